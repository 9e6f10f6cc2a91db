"""voc.analysis: sentiment with a confidence and themes per clause, in four languages, from any text."""

import time

import pytest

from voc.analysis import analyse


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("the support agent was great, delivery was awful", "en", {"support": "positive", "delivery": "negative"}),
        ("پشتیبانی عالی بود ولی ارسال خیلی دیر بود", "fa", {"support": "positive", "delivery": "negative"}),
        ("ersal kheili dir bood vali keyfiat aali bood", "fa", {"delivery": "negative", "quality": "positive"}),
        ("الموظف كان متعاون جداً بس التوصيل كان سيء", "ar", {"support": "positive", "delivery": "negative"}),
        ("הנציג היה מעולה אבל המשלוח היה גרוע", "he", {"support": "positive", "delivery": "negative"}),
    ],
)
def test_two_themes_in_one_comment_get_their_own_sentiment(text, language, expected):
    assert analyse(text, language).themes == expected


@pytest.mark.parametrize(
    ("text", "language", "sentiment"),
    [
        ("The product is not good", "en", "negative"),
        ("not bad at all, no problems", "en", "positive"),
        ("کیفیتش خوب نبود", "fa", "negative"),
        ("اصلا راضی نیستم", "fa", "negative"),
        ("المنتج مو زين", "ar", "negative"),
        ("המוצר לא טוב", "he", "negative"),
        ("לא רע בכלל", "he", "positive"),
    ],
)
def test_negation_turns_the_word(text, language, sentiment):
    assert analyse(text, language).sentiment == sentiment


def test_the_score_is_evidence_but_the_text_counts():
    # no words of sentiment: the score decides
    assert analyse("I ordered on Monday", "en", score=10, scale_min=0, scale_max=10).sentiment == "positive"
    assert analyse("I ordered on Monday", "en", score=2, scale_min=0, scale_max=10).sentiment == "negative"
    # a clear text wins over a middling score
    result = analyse("terrible, the parcel was broken and late", "en", score=8, scale_min=0, scale_max=10)
    assert result.sentiment == "negative"
    assert result.themes["delivery"] == "negative"


def test_confidence_is_higher_for_a_clear_text():
    weak = analyse("fine", "en")
    strong = analyse("excellent, amazing, perfect, I love it", "en")
    assert strong.sentiment == "positive"
    assert 0 < weak.confidence < strong.confidence <= 0.99


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "😍😍😍",
        "😡😡",
        "DELIVERY WAS LATE AGAIN!!!",
        "<script>alert('x')</script>",
        "kheili khoob bood merci",
        "The app is عالی but ارسال was late",
        "x " * 50_000,
        "\u202e\u200fقیمت\u200c",
    ],
)
def test_bad_input_gives_an_answer(text):
    for language in ("en", "fa", "ar", "he", "xx"):
        result = analyse(text, language)
        assert result.sentiment in ("positive", "neutral", "negative")
        assert 0 < result.confidence <= 0.99


def test_emoji_and_capitals_count():
    assert analyse("😍😍", "fa").sentiment == "positive"
    assert analyse("😡", "ar").sentiment == "negative"
    assert analyse("DELIVERY WAS LATE", "en").themes == {"delivery": "negative"}


def test_empty_text_is_neutral_with_no_theme():
    result = analyse("", "fa")
    assert (result.sentiment, result.themes) == ("neutral", {})


def test_a_very_long_text_is_read_up_to_the_limit_quickly():
    started = time.perf_counter()
    result = analyse("great delivery " * 100_000, "en")
    assert time.perf_counter() - started < 5  # a bound against runaway work, not a speed figure
    assert result.sentiment == "positive"


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("ارسال خیلی دیر بود", "en", "fa"),
        ("التوصيل كان سيء", "en", "ar"),
        ("המשלוח היה גרוע", "en", "he"),
        ("ersal kheili dir bood", "fa", "fa"),  # Finglish stays Persian
        ("ارسال خیلی دیر بود", "ar", "ar"),  # a customer's own language wins inside its script
        ("ok 👍", "he", "he"),
    ],
)
def test_the_text_is_read_in_the_language_of_its_script(text, language, expected):
    from voc.analysis import text_language

    assert text_language(text, language) == expected
