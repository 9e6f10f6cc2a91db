"""voc.normalize: the forms people type read as one word in each language."""

import pytest

from voc.normalize import normalize


@pytest.mark.parametrize(
    ("variants", "language"),
    [
        # Persian: Arabic yeh and kaf, ZWNJ, its absence and a space after «می»
        (["کیفیت", "كيفيت", "کيفيت"], "fa"),
        (["می‌خواهم", "میخواهم", "می خواهم"], "fa"),
        (["قیمت‌ها", "قیمتها", "قیمت ها"], "fa"),
        (["خانهٔ", "خانه"], "fa"),
        (["جـــنس", "جنس"], "fa"),
        (["سفارش ۱۲۳", "سفارش ١٢٣", "سفارش 123"], "fa"),
        # Arabic: hamza on alef, madda, teh marbuta, alef maksura, diacritics, tatweel, Persian letters
        (["جودة", "جوده", "جُودَة"], "ar"),
        (["أسعار", "إسعار", "اسعار"], "ar"),
        (["المنتـــج", "المنتج"], "ar"),
        (["على", "علي", "علی"], "ar"),
        (["كويس", "کویس"], "ar"),
        # Hebrew: niqqud, final letters
        (["שָׁלוֹם", "שלום", "שלומ"], "he"),
        (["משלוח מהיר", "מִשְׁלוֹחַ מָהִיר"], "he"),
        (["ארוך", "ארוכ"], "he"),
        # English: case, curly apostrophes, "n't"
        (["DIDN'T ARRIVE", "didn’t arrive", "did not arrive"], "en"),
        (["can't", "can not"], "en"),
    ],
)
def test_variants_read_alike(variants, language):
    assert len({normalize(v, language) for v in variants}) == 1, [normalize(v, language) for v in variants]


def test_persian_keeps_what_is_not_a_variant():
    assert normalize("آب", "fa") == "آب"  # alef madda is its own letter in Persian
    assert normalize("Hello  WORLD", "fa") == "hello world"


@pytest.mark.parametrize(
    "text", ["", None, "   ", "😍😍😍", "<script>alert(1)</script>", "x" * 100_000, "\u200f\u202e"]
)
def test_any_input_is_safe(text):
    out = normalize(text, "fa")
    assert isinstance(out, str)
