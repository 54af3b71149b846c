"""A line's texts: the sections of its file, their errors, languages and placeholders.

Every kind of bad file pins the message a line's manager reads (file, line, field, what was
expected), as the routing rules' tests do; ``docs/line-messages.md`` is the reference.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ConfigError
from engine.line_texts.languages import LanguagesConfig, LocalizedText, choose_language, language_of
from engine.line_texts.render import TextContext, TextRenderer
from engine.line_texts.sections import (
    LineSections,
    LineTexts,
    load_line_sections,
    parse_line_sections,
)
from engine.line_texts.templates import PLACEHOLDERS, TextValues, check_template, fill
from engine.models import Customer, InboundMessage, Route, TextContent

DOCS = Path(__file__).resolve().parents[2] / "docs"


def yaml_examples(page: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", (DOCS / page).read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("page", ["line-messages.md", "bot.md"])
def test_every_yaml_example_of_the_docs_loads(page: str) -> None:
    examples = yaml_examples(page)
    assert examples
    for example in examples:
        LineTexts.build(parse_line_sections(example, page))


def complete_example() -> LineSections:
    return parse_line_sections(yaml_examples("line-messages.md")[0], "line-messages.md")


def test_the_sections_are_read_from_a_routing_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "demo-support.yaml"
    path.write_text(
        "portal: demo\nline: support\nqueue:\n  members:\n    - operator: anna\n"
        "messages:\n  closing:\n    text: 'Спасибо! 🙏'\n",
        encoding="utf-8",
    )
    sections = load_line_sections(path)
    assert sections.messages.closing is not None
    assert sections.messages.closing.text.pick("*") == "Спасибо! 🙏"
    assert sections.bot is None and sections.languages is None


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the line's file"):
        load_line_sections(tmp_path / "missing.yaml")
    (tmp_path / "latin1.yaml").write_bytes(
        "messages: {closing: {text: 'caf\xe9'}}".encode("latin-1")
    )
    with pytest.raises(ConfigError, match="cannot read"):
        load_line_sections(tmp_path / "latin1.yaml")


BAD_FILES = [
    (
        "portal: p\nline: l\nmessages:\n  greeting:\n    text: 'Hi {custmer_name}'\n",
        r"^l\.yaml:5: messages\.greeting\.text: Value error, unknown placeholder \{custmer_name\}; "
        r"known: \{customer_name\}, \{line_name\}, \{opens_at\}, \{operator_name\}, "
        r"\{queue_position\}$",
    ),
    (
        "languages:\n  default: ru\n  supported: [ru, en]\nmessages:\n  greeting:\n"
        "    text:\n      ru: 'Привет'\n      en: 'Hi {name}'\n",
        r"^l\.yaml:8: messages\.greeting\.text\.en: Value error, unknown placeholder \{name\}",
    ),
    (
        "messages:\n  closing:\n    text: 'Bye {customer_name!r}'\n",
        r"^l\.yaml:3: messages\.closing\.text: .*takes no format: write \{customer_name\}$",
    ),
    (
        "messages:\n  closing:\n    text: 'Bye {customer_name:>10}'\n",
        r"takes no format",
    ),
    (
        "messages:\n  closing:\n    text: 'Bye }'\n",
        r"^l\.yaml:3: messages\.closing\.text: .*Single '\}'.*"
        r"write \{\{ and \}\} for literal braces$",
    ),
    (
        "messages:\n  closing:\n    text: '{customer_name.__class__}'\n",
        r"unknown placeholder \{customer_name\.__class__\}",
    ),
    (
        "messages:\n  closing:\n    text: '   '\n",
        r"^l\.yaml:3: messages\.closing\.text: Value error, a text cannot be blank$",
    ),
    (
        "languages:\n  default: ru\n  supported: [ru, en]\nmessages:\n  closing:\n"
        "    text: {ru: 'Пока'}\n",
        r"^l\.yaml:6: messages\.closing\.text: has no text for \['en'\]: "
        r"add them, or a \"\*\" text",
    ),
    (
        "messages:\n  closing:\n    text: {ru: 'Пока'}\n",
        r"^l\.yaml:3: messages\.closing\.text: names languages \['ru'\] but the line has no "
        r"`languages` section$",
    ),
    (
        "languages: {default: ru}\nmessages:\n  closing:\n    text: {ru: 'Пока', de: 'Tschüss'}\n",
        r"^l\.yaml:4: messages\.closing\.text: names \['de'\], "
        r"not in languages\.supported \['ru'\]$",
    ),
    (
        "languages: {default: ru, supported: [en]}\n",
        r"^l\.yaml:1: languages: Value error, default 'ru' is not in supported$",
    ),
    (
        "languages: {default: RU}\n",
        r"^l\.yaml:1: languages\.default: String should match pattern",
    ),
    (
        "messages:\n  consent:\n    text: 'OK?'\n"
        "    accept_label: 'Да'\n    decline_label: 'да!'\n",
        r"^l\.yaml:5: messages\.consent\.decline_label: "
        r"same label as messages\.consent\.accept_label$",
    ),
    (
        "languages: {default: ru, supported: [ru, en]}\nmessages:\n  rating:\n    text: x\n"
        "    like_label: {ru: '👍', en: 'Yes'}\n    dislike_label: {ru: '👎', en: 'YES'}\n",
        r"^l\.yaml:6: messages\.rating\.dislike_label: same label as messages\.rating\.like_label "
        r"in 'en'$",
    ),
    (
        "messages:\n  consent:\n    text: 'OK?'\n    accept_label: \"two\\nlines\"\n",
        r"^l\.yaml:4: messages\.consent\.accept_label: Value error, a button label is one line",
    ),
    (
        "messages:\n  rating:\n    text: x\n    like_label: 'Thanks, {customer_name}'\n",
        r"^l\.yaml:4: messages\.rating\.like_label: "
        r"Value error, a button label holds no placeholders",
    ),
    (
        "messages:\n  follow_ups:\n    - {after_s: 60, text: a}\n    - {after_s: 30, text: b}\n",
        r"^l\.yaml:2: messages\.follow_ups: Value error, each after_s must be longer than the one "
        r"before$",
    ),
    (
        "messages:\n  auto_close: {after_s: 60}\n  follow_ups:\n    - {after_s: 60, text: a}\n",
        r"^l\.yaml:1: messages: Value error, follow_ups: every after_s must be shorter than "
        r"auto_close\.after_s",
    ),
    ("messages:\n  kpi: {}\n", r"^l\.yaml:2: messages\.kpi: Value error, set first_answer_s"),
    (
        "messages:\n  kpi: {first_answer_s: 0}\n",
        r"messages\.kpi\.first_answer_s: Input should be greater than 0",
    ),
    (
        "messages:\n  placeholder_defaults:\n    customer_name: 'dear {operator_name}'\n",
        r"^l\.yaml:2: messages\.placeholder_defaults: Value error, customer_name: a default holds "
        r"no placeholder",
    ),
    (
        "messages:\n  placeholder_defaults:\n    customer: 'dear'\n",
        r"messages\.placeholder_defaults\.customer\.\[key\]: Input should be 'customer_name'",
    ),
    (
        "messages:\n  greting: {text: hi}\n",
        r"^l\.yaml:2: messages\.greting: Extra inputs are not permitted$",
    ),
    (
        "messages:\n  greeting: {when: always, text: hi}\n",
        r"messages\.greeting\.when: Input should be 'first_dialog' or 'every_dialog'",
    ),
    ("- a\n", r"^l\.yaml: expected a mapping of sections, got list$"),
    ("messages: [\n", r"^l\.yaml:\d+: invalid YAML"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_a_bad_file_names_the_line_and_the_field(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_line_sections(text, "l.yaml")
    assert re.search(expected, str(raised.value), re.M), str(raised.value)


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = (
        "languages: {default: ru, supported: [ru, en]}\n"
        "messages:\n"
        "  closing: {text: {ru: 'Пока'}}\n"
        "  greeting: {text: {en: 'Hi'}}\n"
    )
    with pytest.raises(ConfigError) as raised:
        parse_line_sections(text, "l.yaml")
    assert str(raised.value).splitlines() == [
        "l.yaml:4: messages.greeting.text: has no text for ['ru']: add them, or a \"*\" text for "
        "every other language",
        "l.yaml:3: messages.closing.text: has no text for ['en']: add them, or a \"*\" text for "
        "every other language",
    ]


def test_build_refuses_sections_that_were_not_checked() -> None:
    sections = LineSections.model_validate({"messages": {"closing": {"text": {"ru": "Пока"}}}})
    with pytest.raises(ConfigError, match=r"messages\.closing\.text: names languages"):
        LineTexts.build(sections)


# -- languages


LANGUAGES = LanguagesConfig(default="ru", supported=("ru", "en", "pt-BR"))


@pytest.mark.parametrize(
    ("customer", "chosen"),
    [
        ("en", "en"),
        ("EN-us", "en"),
        ("en_GB", "en"),
        ("pt", "pt-BR"),
        ("pt-br", "pt-BR"),
        ("de", "ru"),
        ("", "ru"),
        (None, "ru"),
    ],
)
def test_a_customer_gets_the_closest_supported_language(customer: str | None, chosen: str) -> None:
    assert choose_language(customer, LANGUAGES) == chosen


def test_a_line_without_languages_has_one_text_for_all() -> None:
    assert choose_language("en", None) == "*"


def inbound(customer: Customer, **extras: str) -> InboundMessage:
    return InboundMessage(
        id="e1",
        route=Route(portal_id="p", line_id="l", connector_id="c", channel="vk"),
        dialog_key="1",
        customer=customer,
        content=TextContent(text="hi"),
        channel_message_id="1",
        channel_event_id="1",
        order_key=1,
        sent_at=1.0,
        received_at=1.0,
        extras=extras,
    )


def test_the_language_comes_from_the_customer_or_vk_lang_id() -> None:
    assert (
        language_of(inbound(Customer(channel_user_id="1", language="en-US"), lang_id="0"))
        == "en-US"
    )
    assert language_of(inbound(Customer(channel_user_id="1"), lang_id="3")) == "en"
    assert language_of(inbound(Customer(channel_user_id="1"), lang_id="0")) == "ru"
    assert language_of(inbound(Customer(channel_user_id="1"), lang_id="97")) is None
    assert language_of(inbound(Customer(channel_user_id="1"))) is None


def test_a_text_is_picked_by_language_then_star_then_default() -> None:
    text = LocalizedText.of({"ru": "Привет", "*": "Hello"})
    assert text.pick("ru", "ru") == "Привет"
    assert text.pick("en", "ru") == "Hello"
    only_ru = LocalizedText.of({"ru": "Привет"})
    assert only_ru.pick("en", "ru") == "Привет"
    assert only_ru.pick("en", None) == "Привет"


# -- rendering


def test_rendering_fills_values_in_the_customers_language() -> None:
    texts = LineTexts.build(complete_example())
    context = texts.renderer.context("en", TextValues(customer_name="Anna", line_name="Acme"))
    greeting = texts.messages.greeting(context, first_dialog=True)
    assert greeting is not None
    assert greeting.text == "Hello, Anna! This is Acme support 👋"
    russian = texts.renderer.context("ru-RU", TextValues())
    greeting = texts.messages.greeting(russian, first_dialog=True)
    assert greeting is not None
    assert greeting.text == "Здравствуйте, клиент! Это поддержка 👋"  # default, then nothing


def test_a_missing_value_takes_the_default_or_leaves_no_double_space() -> None:
    assert fill("Rate {operator_name} from 1 to 5", TextValues()) == "Rate from 1 to 5"
    assert fill("Hi {customer_name}!", TextValues(), {"customer_name": "there"}) == "Hi there!"
    assert fill("Hi {customer_name}!", TextValues(customer_name="  ")) == "Hi !"
    assert (
        fill("No. {queue_position} {{in line}}", TextValues(queue_position=3)) == "No. 3 {in line}"
    )
    assert fill(
        "Opens {opens_at}", TextValues(opens_at="Tue 2026-03-10 09:00 (Europe/Moscow)")
    ) == ("Opens Tue 2026-03-10 09:00 (Europe/Moscow)")


def test_fill_never_runs_a_text_that_did_not_pass_the_check() -> None:
    assert fill("{customer_name.__class__}", TextValues(customer_name="x")) == ""
    assert fill("broken }", TextValues()) == "broken }"


names = st.sampled_from(sorted(PLACEHOLDERS))
no_braces = st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=20)
texts_with_placeholders = st.lists(
    st.one_of(no_braces, names.map("{{{}}}".format)), min_size=1, max_size=8
).map("".join)
values = st.builds(
    TextValues,
    customer_name=st.none() | no_braces,
    operator_name=st.none() | no_braces,
    line_name=st.none() | no_braces,
    opens_at=st.none() | no_braces,
    queue_position=st.none() | st.integers(-5, 10_000),
)


@given(texts_with_placeholders, values)
def test_a_checked_text_fills_without_a_brace_left(text: str, given_values: TextValues) -> None:
    if not text.strip():
        return
    assert check_template(text) == text
    assert "{" not in fill(text, given_values) and "}" not in fill(text, given_values)


@given(st.text(max_size=200))
def test_checking_any_text_either_passes_or_says_why(text: str) -> None:
    try:
        check_template(text)
    except ValueError as exc:
        assert str(exc)
    else:
        fill(text, TextValues(customer_name="Ж", queue_position=1))


def test_the_renderer_works_without_languages() -> None:
    renderer = TextRenderer(None)
    context = TextContext(renderer.language_for("en"))
    assert renderer.render(LocalizedText.of("Ответ 👍 {line_name}"), context) == "Ответ 👍"
