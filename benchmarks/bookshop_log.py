"""A small bookshop log, for trying penchant on a catalogue that is not movies (docs/benchmarks.md,
"A bookshop log, end to end").

300 readers ``reader-0000``… × 500 books ``isbn-978…``, 15,000 distinct (reader, book) events with
ratings 1–5 and unix times over about a year. Each reader and book has one of 8 hidden genres: 70% of
a reader's events are books of their genre, 30% are drawn by a Zipf(1.6) popularity. The seed fixes
the log (seed 7 is the one the docs' figures were measured on).

    python benchmarks/bookshop_log.py --out books.csv
    penchant split books.csv --out split/ --ratios 0.8,0.1,0.1 --seed 2026
"""

from __future__ import annotations

import argparse
import csv

import numpy as np


def bookshop_log(seed: int = 7, n_readers: int = 300, n_books: int = 500, n_events: int = 15_000) -> list[tuple]:
    """Rows (reader, book, rating, unix seconds), sorted by time. A generator loop: 15,000 draws."""
    rng = np.random.default_rng(seed)
    readers = [f"reader-{u:04d}" for u in range(n_readers)]
    books = [f"isbn-978{rng.integers(10**9, 10**10)}" for _ in range(n_books)]
    reader_genre, book_genre = rng.integers(0, 8, n_readers), rng.integers(0, 8, n_books)
    popularity = rng.zipf(1.6, n_books).astype(float)
    popularity /= popularity.sum()
    seen, rows, start = set(), [], 1_700_000_000
    while len(rows) < n_events:
        u = rng.integers(n_readers)
        if rng.random() < 0.7:
            i = rng.choice(np.flatnonzero(book_genre == reader_genre[u]))
        else:
            i = rng.choice(n_books, p=popularity)
        if (u, i) in seen:
            continue
        seen.add((u, i))
        rows.append((readers[u], books[i], int(rng.integers(1, 6)), start + int(rng.integers(0, 3e7))))
    return sorted(rows, key=lambda r: r[3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="books.csv", help="CSV to write (user,item,rating,timestamp)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with open(args.out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["user", "item", "rating", "timestamp"])
        writer.writerows(bookshop_log(args.seed))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
