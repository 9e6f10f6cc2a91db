"""Voice of the customer: quality and speed of voc.analysis on the shipped evaluation set.

    .venv/bin/python bench/voc_bench.py            # dev and test halves, speed on one core
    .venv/bin/python bench/voc_bench.py --split test --errors

voc/evaluation/comments.jsonl holds 240 comments (60 per language) written for the project,
each labelled with its sentiment and themes and put in the `dev` or `test` half (alternately).
The lexicons were written before the set, then corrected by reading the errors of the dev half
only; the test half is the honest figure. Printed per language: sentiment accuracy and macro-F1,
theme accuracy (the predicted set of themes equals the labelled set, "no theme" included) and
theme micro-F1, next to two baselines: the majority class (of the dev half) and the score alone
(NPS 0-6 negative, 7-8 neutral, 9-10 positive; a text without a score gets the majority class).
Then the test half again with word weights learned (voc.learning) from the dev half's labels,
standing for managers' corrections: the effect of learning from corrections.
Speed: comments/s of voc.analysis.analyse in this one process (one core), with host busy%.
No database and no Django are needed.
"""

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.crm_bench import busy_between, cpu_times, host_busy  # noqa: E402
from voc.analysis import analyse, build_dictionary  # noqa: E402
from voc.learning import learn_weights  # noqa: E402

DATA = ROOT / "voc" / "evaluation" / "comments.jsonl"
LABELS = ("negative", "neutral", "positive")
LANGUAGES = ("en", "fa", "ar", "he")


def load(split: str | None = None) -> list[dict]:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if split in (None, "all") or r["split"] == split]


def macro_f1(gold: list[str], predicted: list[str]) -> float:
    scores = []
    for label in LABELS:
        tp = sum(g == p == label for g, p in zip(gold, predicted, strict=True))
        fp = sum(p == label != g for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == label != p for g, p in zip(gold, predicted, strict=True))
        if tp + fp + fn == 0:
            continue  # a class neither labelled nor predicted does not count
        scores.append(2 * tp / (2 * tp + fp + fn))
    return statistics.mean(scores) if scores else 0.0


def accuracy(gold: list, predicted: list) -> float:
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / max(1, len(gold))


def theme_micro_f1(gold: list[set], predicted: list[set]) -> float:
    tp = sum(len(g & p) for g, p in zip(gold, predicted, strict=True))
    fp = sum(len(p - g) for g, p in zip(gold, predicted, strict=True))
    fn = sum(len(g - p) for g, p in zip(gold, predicted, strict=True))
    return 2 * tp / max(1, 2 * tp + fp + fn)


def score_label(score) -> str | None:
    if score is None:
        return None
    return "negative" if score <= 6 else "neutral" if score <= 8 else "positive"


def evaluate(rows: list[dict], dev: list[dict], show_errors: bool, learned: dict | None = None) -> list[tuple]:
    majority_sentiment = Counter(r["sentiment"] for r in dev).most_common(1)[0][0]
    majority_themes = Counter(tuple(r["themes"]) for r in dev).most_common(1)[0][0]
    out = []
    for language in LANGUAGES:
        items = [r for r in rows if r["language"] == language]
        if not items:
            continue
        d = build_dictionary(language, None, learned.get(language, {})) if learned is not None else None
        results = [
            analyse(r["text"], language, score=r["score"], scale_min=0, scale_max=10, dictionary=d) for r in items
        ]
        gold_s = [r["sentiment"] for r in items]
        pred_s = [res.sentiment for res in results]
        gold_t = [set(r["themes"]) for r in items]
        pred_t = [set(res.themes) for res in results]
        majority = [majority_sentiment] * len(items)
        by_score = [score_label(r["score"]) or majority_sentiment for r in items]
        out.append(
            (
                language,
                len(items),
                accuracy(gold_s, pred_s),
                macro_f1(gold_s, pred_s),
                macro_f1(gold_s, majority),
                macro_f1(gold_s, by_score),
                accuracy(gold_t, pred_t),
                theme_micro_f1(gold_t, pred_t),
                accuracy(gold_t, [set(majority_themes)] * len(items)),
            )
        )
        if show_errors:
            for r, res in zip(items, results, strict=True):
                if res.sentiment != r["sentiment"] or set(res.themes) != set(r["themes"]):
                    print(
                        f"  {r['id']} [{r['split']}] gold {r['sentiment']} {r['themes']} got {res.sentiment} "
                        f"{sorted(res.themes)} ({res.polarity:+.1f}, score {r['score']}): {r['text']}"
                    )
    return out


def print_table(title: str, table: list[tuple]) -> None:
    print(f"\n{title}")
    print("lang   n  sent.acc  sent.macroF1 | majority  score-only || theme.acc  theme.microF1 | majority")
    for lang, n, acc, f1, maj, by_score, t_acc, t_f1, t_maj in table:
        print(
            f"{lang:4} {n:3}  {acc:8.2f}  {f1:12.2f} | {maj:8.2f}  {by_score:10.2f} || {t_acc:9.2f}"
            f"  {t_f1:13.2f} | {t_maj:8.2f}"
        )


def speed(rows: list[dict], seconds: float) -> tuple[float, float]:
    texts = [(r["text"], r["language"], r["score"]) for r in rows]
    for text, language, score in texts:  # warm the dictionaries
        analyse(text, language, score=score, scale_min=0, scale_max=10)
    done = 0
    before = cpu_times()
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for text, language, score in texts:
            analyse(text, language, score=score, scale_min=0, scale_max=10)
        done += len(texts)
    elapsed = time.perf_counter() - started
    return done / elapsed, busy_between(before, cpu_times())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("dev", "test", "all", "both"), default="both")
    parser.add_argument("--errors", action="store_true", help="print every comment read wrong")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to measure the speed")
    args = parser.parse_args()
    print(f"host busy before: {host_busy():.0f}% (2 cores shared)")
    dev = load("dev")
    splits = ("dev", "test") if args.split == "both" else (args.split,)
    for split in splits:
        print_table(f"{split} half", evaluate(load(split), dev, args.errors))
    if args.split == "both":
        # Learning from corrections: the dev half's labels stand for managers' corrections.
        learned = learn_weights([(r["text"], r["language"], r["sentiment"]) for r in dev])
        words = sum(len(w) for w in learned.values())
        print_table(
            f"test half, with word weights learned from the dev half as corrections ({words} words)",
            evaluate(load("test"), dev, False, learned),
        )
    rate, busy = speed(load(), args.seconds)
    print(f"\nspeed: {rate:,.0f} comments/s on one core (host busy {busy:.0f}% while measuring)")


if __name__ == "__main__":
    main()
