"""How well interests typed in readers' own words get the papers they mean.

    .venv/bin/python -m bench.relevance [--labels bench/relevance.json] [--verbose]

For each labelled interest (bench/relevance.json: the interest as a reader would type
it, the sample it is judged on, the papers that are "relevant" and those that are
"related"), this imports the interest's sample into a throwaway SQLite database,
signs a reader up to the interest as the form does (``Topic.for_interest``), lets
Paperboy score every paper and composes that reader's 10-paper digest with the
digest's own code (``compose_many``). It does so three times: lexical matching alone,
semantic matching alone and both (``PAPERBOY_MATCHING``), and reports per interest:

- recall: the relevant papers in the digest, out of min(relevant, 10);
- off: picks that are neither relevant nor related;
- nDCG@10: relevant papers count 2, related 1.

The interests on a source that gives keywords (Hugging Face's ``ai_keywords``) are
then evaluated again on the same source with its keywords taken out, and the two are
shown side by side: what the keywords bring to matching.

Needs no server; the model is the configured one (PAPERBOY_EMBEDDING_MODEL).
"""

import argparse
import datetime as dt
import json
import math
import os
import sys
import tempfile
import time
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("lexical", "semantic", "both")
DIGEST_SIZE = 10


def _setup(var_dir: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "paperboy.settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{var_dir}/relevance.sqlite3"
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("PAPERBOY_VAR_DIR", str(ROOT / "var"))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _ndcg(gains: list[int], ideal: list[int]) -> float:
    def dcg(values):
        return sum(gain / math.log2(rank + 2) for rank, gain in enumerate(values))

    best = dcg(sorted(ideal, reverse=True)[:DIGEST_SIZE])
    return dcg(gains) / best if best else 0.0


@cache  # asked for every label of a source, and again for each mode
def without_keywords(source: str) -> bytes | None:
    """A Hugging Face JSON source with every paper's ``ai_keywords`` taken out; None
    when the source has none to take out."""
    path = ROOT / source
    if path.suffix.lower() != ".json":
        return None
    items = json.loads(path.read_bytes())
    found = False
    for item in items if isinstance(items, list) else [items]:
        for record in (item, item.get("paper") if isinstance(item, dict) else None):
            if isinstance(record, dict) and record.pop("ai_keywords", None):
                found = True
    return json.dumps(items).encode() if found else None


def evaluate(labels: list[dict], mode: str, keywords: bool = True) -> list[dict]:
    """``keywords=False``: each source imported without its keywords."""
    from django.test import override_settings
    from django.utils import timezone

    from digest.compose import compose_many
    from papers import importers, matching, semantic
    from papers.models import Paper, Topic
    from subscriptions.models import Subscriber

    results = []
    with override_settings(PAPERBOY_MATCHING=mode):
        for source in sorted({label["source"] for label in labels}):
            Subscriber.objects.all().delete()
            Paper.objects.all().delete()
            Topic.objects.interests().delete()
            # Topics are measured against these papers, not the last source's.
            semantic._background_cache.clear()
            data = None if keywords else without_keywords(source)
            importers.import_source(str(ROOT / source), data=data)
            titles = set(Paper.objects.values_list("title", flat=True))
            for label in [label for label in labels if label["source"] == source]:
                missing = (set(label["relevant"]) | set(label.get("related", []))) - titles
                if missing:
                    raise SystemExit(f"{label['interest']!r}: not in {source}: {sorted(missing)}")
                topic = Topic.for_interest(label["interest"])
                # A curated topic of the same name is that topic: rescored all the same.
                matching.rescore_topic(topic)
                reader = Subscriber.objects.create(
                    email=f"reader{len(results)}@bench.example",
                    status=Subscriber.Status.ACTIVE,
                    confirmed_at=timezone.now(),
                    max_papers=DIGEST_SIZE,
                )
                reader.topics.set([topic])
                picks = compose_many([reader], timezone.now() + dt.timedelta(minutes=1))[reader.pk]
                picked = [pick.paper.title for pick in picks]
                relevant, related = set(label["relevant"]), set(label.get("related", []))
                gains = [2 if t in relevant else 1 if t in related else 0 for t in picked]
                ideal = [2] * len(relevant) + [1] * len(related)
                results.append(
                    {
                        "interest": label["interest"],
                        "source": Path(source).name,
                        "kind": label.get("kind", ""),
                        "recall": len(relevant & set(picked)) / min(len(relevant), DIGEST_SIZE),
                        "off": sum(1 for gain in gains if gain == 0),
                        "picks": len(picked),
                        "ndcg": _ndcg(gains, ideal),
                        "picked": [(pick.paper.title, pick.reason) for pick in picks],
                    }
                )
    return results


def _totals(rows: list[dict]) -> str:
    recall = sum(r["recall"] for r in rows) / len(rows)
    ndcg = sum(r["ndcg"] for r in rows) / len(rows)
    off, picks = sum(r["off"] for r in rows), sum(r["picks"] for r in rows)
    empty = sum(1 for r in rows if not r["picks"])
    return (
        f"mean recall {recall:.2f}, mean nDCG@10 {ndcg:.2f}, "
        f"off-topic {off} of {picks} picks ({20 * off / max(picks, 1):.1f} in 20), "
        f"{empty} of {len(rows)} readers with no digest"
    )


def _print_keywords(by_mode: dict[str, list[dict]], bare: dict[str, list[dict]]) -> None:
    """The interests on sources with keywords: with them, and with them taken out."""
    runs = {
        label: {mode: {(r["interest"], r["source"]): r for r in rows[mode]} for mode in MODES}
        for label, rows in (("with", by_mode), ("without", bare))
    }
    keys = [(r["interest"], r["source"]) for r in bare[MODES[0]]]
    sources = sorted({source for _, source in keys})
    print(f"\nKeywords: the {len(keys)} interests on {', '.join(sources)}, with and without")
    print(f"{'interest':<58} {'keywords':<9}" + "".join(f" | {mode:^18}" for mode in MODES))
    print(f"{'':<58} {'':<9}" + " | recall off nDCG  " * len(MODES))
    for key in keys:
        for label in ("with", "without"):
            row = [runs[label][mode][key] for mode in MODES]
            cells = "".join(f" | {r['recall']:>6.2f} {r['off']:>3} {r['ndcg']:>5.2f}" for r in row)
            name = key[0][:58] if label == "with" else ""
            print(f"{name:<58} {label:<9}{cells}")
    print()
    for mode in MODES:
        for label in ("with", "without"):
            rows = [runs[label][mode][key] for key in keys]
            print(f"{mode:>9}, {label + ' keywords:':<18} {_totals(rows)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", default=str(ROOT / "bench" / "relevance.json"))
    parser.add_argument("--verbose", action="store_true", help="print each digest")
    args = parser.parse_args(argv)
    labels = json.loads(Path(args.labels).read_text())["interests"]
    keyed = [label for label in labels if without_keywords(label["source"]) is not None]
    with tempfile.TemporaryDirectory(prefix="paperboy-relevance-") as var_dir:
        _setup(var_dir)
        from papers import embeddings

        started = time.perf_counter()
        by_mode = {mode: evaluate(labels, mode) for mode in MODES}
        bare = {mode: evaluate(keyed, mode, keywords=False) for mode in MODES} if keyed else {}
        elapsed = time.perf_counter() - started
        model = embeddings.status()
    header = f"{'interest':<58} {'sample':<9}" + "".join(f" | {mode:^18}" for mode in MODES)
    print(f"model: {model[0]}{' (' + model[1] + ')' if model[1] else ''}; {elapsed:.0f} s")
    print(header)
    print(f"{'':<58} {'':<9}" + " | recall off nDCG  " * len(MODES))
    for row in zip(*(by_mode[mode] for mode in MODES), strict=True):
        first = row[0]
        cells = "".join(f" | {r['recall']:>6.2f} {r['off']:>3} {r['ndcg']:>5.2f}" for r in row)
        print(f"{first['interest'][:58]:<58} {first['source'][:9]:<9}{cells}")
    print()
    for mode in MODES:
        print(f"{mode:>9}: {_totals(by_mode[mode])}")
    if bare:
        _print_keywords(by_mode, bare)
    if args.verbose:
        for row in by_mode["both"]:
            print(f"\n{row['interest']} ({row['source']})")
            for title, reason in row["picked"]:
                print(f"  - {title[:80]}  [{reason}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
