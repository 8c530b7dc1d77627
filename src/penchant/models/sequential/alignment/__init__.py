"""Preference optimisation of a trained next-item model: its next-item distribution is a policy
over the catalogue, fine-tuned on (history, preferred item, rejected item) triples.

* :mod:`.policy`: log π(j | s) of a sequential network;
* :mod:`.pairs`: liked next items (winners) after their histories, rated losers, and the
  preference degree of a pair (rating gap or distance in the history) for SPO;
* :mod:`.losses`: dpo, rdpo, ipo, sft and SPO's self-supervised preference-degree loss;
* :mod:`.negatives`: rated, uniform, popular and on-policy (current top-K) rejected items;
* :mod:`.finetune`: the driver run at the end of SASRec / GRU4Rec ``fit`` (``finetune=...``);
* :mod:`.ppo`: PPO against a reward model learned from the same pairs.
"""
