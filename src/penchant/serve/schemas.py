"""Request and response bodies of the HTTP API (pydantic): unknown fields are rejected, every
field is bounded, so a bad request is a 422 that names the field. What a database cannot keep is
refused here too, the same on SQLite and PostgreSQL: a NUL character in any string (PostgreSQL's
text cannot hold one) and a number that is not finite (NaN, ±infinity, or ``1e309``, which JSON
parsers read as infinity)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from penchant.serve.keys import SCOPES
from penchant.serve.learned_policies import served_names
from penchant.serve.store import MAX_ID_LENGTH


def refuse_nul(value):
    """``value`` unchanged, unless a string in it (list items, dict keys and values included)
    holds a NUL character: then a ValueError (a 422 naming the field)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("a NUL character (\\u0000) is not allowed")
    elif isinstance(value, dict):
        for k, v in value.items():
            refuse_nul(k)
            refuse_nul(v)
    elif isinstance(value, list | tuple):
        for v in value:
            refuse_nul(v)
    return value


#: a string without NUL characters: path and query parameters (request bodies are checked by :class:`Strict`)
Text = Annotated[str, AfterValidator(refuse_nul)]
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
PolicyName = Literal[served_names()]  # type: ignore[valid-type]  # the registry's conversation policies but oracles


def _seconds(value: float | datetime) -> float:
    if isinstance(value, datetime):
        value = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).timestamp()
        if value < 0:
            raise ValueError("a time before 1970-01-01")
    return value


#: unix seconds, or an ISO 8601 time ("2024-01-01T00:00:00Z"; a time without an offset is UTC); stored as seconds
Timestamp = Annotated[Annotated[float, Field(ge=0, allow_inf_nan=False)] | datetime, AfterValidator(_seconds),
                      Field(description="unix seconds, or ISO 8601 (a time without an offset is UTC)")]


class Strict(BaseModel):
    """A request body: unknown fields, NUL characters and numbers that are not finite are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value):
        return refuse_nul(value)


class UserIn(Strict):
    id: Id
    attributes: dict[str, str | int | float | bool | list[str]] = Field(default_factory=dict)


class ItemIn(Strict):
    id: Id
    title: str | None = Field(default=None, max_length=2000)
    text: str | None = Field(default=None, max_length=20000)
    categories: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(default_factory=list)
    attributes: dict[str, str | int | float | bool | list[str]] = Field(default_factory=dict)
    timestamp: Timestamp | None = None  # when the item was published (orders the latest items)


class IdsIn(Strict):
    ids: list[Id] = Field(min_length=1, max_length=10_000)


class ItemOut(BaseModel):
    id: str
    title: str | None
    text: str | None
    categories: list[str]
    attributes: dict
    timestamp: float | None = None

    @classmethod
    def of(cls, row: dict) -> ItemOut:
        """From a stored item row (extra columns such as ``created_at`` left out)."""
        return cls(**{f: row.get(f) for f in cls.model_fields})


class UserOut(BaseModel):
    id: str
    attributes: dict
    events: int | None = None  # how many feedback events the user has (on a single user's page)


class Neighbour(BaseModel):
    id: str
    score: float


class Neighbours(BaseModel):
    """Users with the most similar taste: cosine similarity of their interactions in the deployed model's data."""

    user: str
    model: str
    users: list[Neighbour]


class EventIn(Strict):
    event_id: Id
    user_id: Id
    item_id: Id
    type: Annotated[str, Field(min_length=1, max_length=64)]
    value: float = Field(default=1.0, allow_inf_nan=False)
    timestamp: Timestamp | None = None


class ComparisonIn(Strict):
    """``user_id`` (optional) preferred ``winner`` to ``loser``."""

    event_id: Id
    user_id: Id | None = None
    winner: Id
    loser: Id
    timestamp: Timestamp | None = None


class ServedIn(Strict):
    """A list the service showed (dump and restore): its items top first, the probability each had
    of being shown at its slot, and the list's own probability."""

    list_id: Annotated[str, Field(min_length=1, max_length=64)]
    user_id: Id
    items: list[Id] = Field(min_length=1, max_length=1000)
    propensities: list[Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]] = Field(min_length=1, max_length=1000)
    slate_propensity: float = Field(gt=0, le=1, allow_inf_nan=False)
    version: int | None = None
    #: a two-stage version's ranker, ``name:artefact digest`` (TwoStage.ranker_identity)
    ranker: Annotated[str, Field(max_length=255)] | None = None
    policy: Annotated[str, Field(min_length=1, max_length=64)]
    timestamp: Timestamp

    @model_validator(mode="after")
    def _one_propensity_per_item(self) -> ServedIn:
        if len(self.propensities) != len(self.items):
            raise ValueError(f"{len(self.items)} items but {len(self.propensities)} propensities")
        return self


class CompareIn(Strict):
    user_id: Id | None = None
    options: list[Id] = Field(min_length=2, max_length=100)


class TrainIn(Strict):
    model: str | None = None
    params: dict[str, int | float | str | bool] | None = None
    activate: bool = False


class ScoredItem(BaseModel):
    id: str
    score: float


class Recommendations(BaseModel):
    user: str | None = None
    item: str | None = None
    model: str
    items: list[ScoredItem]
    unknown_items: int | None = None


class ServedItem(ScoredItem):
    propensity: float  # the probability that this item was shown at this slot


class ServedList(BaseModel):
    """A user's list as served: recorded under ``list_id`` (see penchant.serve.impressions)."""

    user: str | None = None
    model: str
    items: list[ServedItem]
    list_id: str


class SessionIn(Strict):
    """An anonymous session: recent item ids, oldest first."""

    items: list[Id] = Field(min_length=1, max_length=200)
    k: int = Field(default=10, ge=1, le=1000)
    exclude_seen: bool = True


class Inserted(BaseModel):
    inserted: int
    duplicates: int


class EventsInserted(Inserted):
    new_users: int  # users and items first named by these events, created (unknown_* = "create")
    new_items: int


class Upserted(BaseModel):
    upserted: int


class Version(BaseModel):
    id: int
    model: str
    params: dict
    status: Literal["training", "ready", "failed"]
    progress: float
    metrics: dict | None
    error: str | None
    events: int | None
    active: bool
    kind: Literal["recommender", "preference"] = "recommender"
    created_at: float
    finished_at: float | None


class ConversationIn(Strict):
    """``opening``: a value the person wants (``brand=Nike``, ``brand: Nike`` or ``Nike``);
    ``attributes``: the item attributes to ask about (``category`` for the categories; all by
    default); ``noun``: what the items are (``product``, ``film``), for questions that name it."""

    user_id: Id | None = None
    policy: PolicyName = "maxent"
    opening: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    attributes: list[Annotated[str, Field(min_length=1, max_length=255)]] | None = Field(default=None, min_length=1,
                                                                                        max_length=100)
    noun: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class AnswerIn(Strict):
    """A question is answered with ``yes`` (one value) or ``values`` (the accepted ones of a
    multi-choice question); a list of items with ``item`` (the one wanted) or nothing (none)."""

    yes: bool | None = None
    values: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] | None = Field(default=None, max_length=100)
    item: Id | None = None


class PolicyTrainIn(Strict):
    """Training of a learned conversation policy from the store: training epochs, how many episodes
    (stored users and held-out items) to train and to test on, and the policy's own parameters (its
    defaults otherwise; ``penchant models`` lists them)."""

    epochs: Annotated[int, Field(ge=1, le=200)] = 12
    episodes: Annotated[int, Field(ge=10, le=100_000)] = 2000
    params: dict[Annotated[str, Field(max_length=100)], str | int | float | bool] = Field(default_factory=dict,
                                                                                         max_length=50)


class KeyIn(Strict):
    """A new API key: a name for people, and its scope."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    scope: Literal[SCOPES]  # type: ignore[valid-type]
