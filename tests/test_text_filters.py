import pytest
from sample_fixtures import spoken_pair

from dataengine.recipe import TextFilterConfig
from dataengine.stage import StageStats
from dataengine.text.filters import TextFilter, check_text, estimated_sound_tokens

CONFIG = TextFilterConfig()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty_text"),
        ("   \n\t", "empty_text"),
        ("?!", "too_few_letters"),
        ("Read https://example.com/page please", "url"),
        ("Go to www.python.org", "url"),
        ("def foo(x): return x", "code"),
        ("int main() { return 0; }", "code"),
        ("what does x == y mean", "code"),
        ("Solve 3x + 4 = 10", "math"),
        ("\\frac{a}{b} simplified", "math"),
        ("@@@ ### $$$ ~~~ hello", "symbols"),
        ("1234 5678 9012 ab", "digits"),
        ("word " * 400, "too_long_estimate"),
    ],
)
def test_unspeakable_texts_are_dropped(text: str, reason: str) -> None:
    verdict = check_text(text, CONFIG, 500)
    assert verdict is not None and verdict[0] == reason


@pytest.mark.parametrize(
    "text",
    [
        "What is AI?",
        "can you write a class with inheritance?",
        "It's 5 o'clock, isn't it?",
        "Who was the first U.S. president?",
        "Tell me about the year 1969 and the moon landing.",
    ],
)
def test_ordinary_questions_pass(text: str) -> None:
    assert check_text(text, CONFIG, 500) is None


def test_length_estimate_scales_with_text() -> None:
    assert estimated_sound_tokens("a" * 140, 14.0) == 250
    assert check_text("word " * 40, CONFIG, 500) is None  # 200 chars ≈ 357 tokens: under the limit
    assert check_text("word " * 250, CONFIG, 500)[0] == "too_long_estimate"  # ≈ 2230 tokens
    assert check_text("word " * 250, CONFIG, 5000) is None


def test_stage_records_reason_and_estimate() -> None:
    samples = [
        spoken_pair("a", 0, "What is AI?", "A field."),
        spoken_pair("b", 1, "see http://x.io", "ok"),
        spoken_pair("c", 2, "   ", "Fine answer."),
    ]
    samples[0].turns[1].origin = None  # the assistant turn is text: never checked
    stats = StageStats("text_filters")
    TextFilter(CONFIG, 500)(samples, stats)
    assert samples[0].kept and samples[0].turns[0].metrics["est_sound_tokens"] > 0
    assert samples[1].reject.reason == "url" and samples[1].reject.stage == "text_filters"
    assert samples[1].reject.turn == 0
    assert samples[2].reject.reason == "empty_text"
    assert (stats.seen, stats.dropped) == (3, 2)
