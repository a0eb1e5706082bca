"""Writes the 3-user DEP toy in DPL's layouts (run from the repo root; output is committed):
`main/Books/{train,val,test}-00000-of-00001.parquet` (HF's parquet conversion of DPL-main) and
`meta/Books/full.jsonl` (DPL-meta rows).

Users A, B, C each have a 4-review test profile (chronological): A [x, y, a3, a4],
B [x, z, b3, b4], C [x, y, c3, c4]. Val profile = the first 3, the i = 7 train profile = the
first 2 (+ A has a shorter train sample with 1 review). User D has train rows but no test row;
user E's longest train sample is not i = 7. Both are skipped by the selection.
"""

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))


def review(user, asin, k):
    return {
        "rating": float(1 + k % 5),
        "title": f"{user} on {asin}",
        "text": f"review {k} by {user} of {asin}",
        "asin": asin,
        "timestamp": 1_600_000_000_000 + 1000 * k,
    }


def main():
    users = {
        "A": ["x", "y", "a3", "a4", "a5"],
        "B": ["x", "z", "b3", "b4", "b5"],
        "C": ["x", "y", "c3", "c4", "c5"],
        "E": ["e1", "e2", "e3", "e4", "e5"],
    }
    rows = {"train": [], "val": [], "test": []}
    for n, (name, asins) in enumerate(users.items()):
        reviews = [review(name, a, 10 * n + k) for k, a in enumerate(asins)]
        prof, target = reviews[:4], reviews[4]
        if name == "E":  # only a shorter train sample (profile of 1, not test - 2)
            rows["train"].append({"user_id": name, "profile": prof[:1], "data": prof[1]})
        else:
            rows["train"].append({"user_id": name, "profile": prof[:2], "data": prof[2]})
        if name == "A":
            rows["train"].append({"user_id": name, "profile": prof[:1], "data": prof[1]})
        rows["val"].append({"user_id": name, "profile": prof[:3], "data": prof[3]})
        rows["test"].append({"user_id": name, "profile": prof, "data": target})
    rows["train"].append(
        {"user_id": "D", "profile": [review("D", "x", 90)], "data": review("D", "w", 91)}
    )
    for split, data in rows.items():
        folder = os.path.join(HERE, "main", "Books")
        os.makedirs(folder, exist_ok=True)
        pq.write_table(
            pa.Table.from_pylist(data), os.path.join(folder, f"{split}-00000-of-00001.parquet")
        )
    asins = sorted(
        {r["asin"] for rs in rows.values() for row in rs for r in [*row["profile"], row["data"]]}
    )
    os.makedirs(os.path.join(HERE, "meta", "Books"), exist_ok=True)
    with open(os.path.join(HERE, "meta", "Books", "full.jsonl"), "w") as f:
        for a in asins:
            f.write(
                json.dumps({"asin": a, "title": f"Item {a}", "description": f"About {a}."}) + "\n"
            )


if __name__ == "__main__":
    main()
