"""Training data from the knowledge base: the prompts serving sends, answer, abstain and
follow-up examples, the validation split, and rated-up replies from exported conversations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chatbot.prompts import HANDOFF_REPLY
from chatbot.training.data import (
    DataOptions,
    Example,
    ExampleSet,
    PromptShape,
    answer_check,
    build_examples,
    read_conversations,
)


def _shape(services: Any) -> PromptShape:
    return PromptShape.from_settings(services.settings, services.chat.generator.count_tokens)


def _examples(services: Any, **options: Any) -> ExampleSet:
    version = services.retriever.index().version
    return build_examples(
        services.knowledge.published(version),
        lambda q, k: services.retriever.search(q, k),
        _shape(services),
        DataOptions(**options),
    )


def test_training_prompts_are_the_prompts_serving_sends(make_services: Any) -> None:
    services = make_services(fast_path_threshold=2.0)  # every answer goes through the model
    examples = _examples(services, abstain_share=0, followup_share=0)
    question = "When will I get my refund?"
    cid = services.chat.start_conversation()
    result = services.chat.send_message(cid, question)
    assert result.decision == "answer"
    served = services.chat.generator.prompts[-1]
    trained = [ex for ex in examples.examples if ex.messages[-2]["content"] == question]
    assert len(trained) == 1
    assert trained[0].messages[:-1] == served
    assert trained[0].messages[-1]["role"] == "assistant"


def test_examples_cover_answers_abstentions_and_follow_ups(make_services: Any) -> None:
    services = make_services()
    examples = _examples(services, abstain_share=1.0, followup_share=1.0, seed=3)
    counts = examples.counts()
    assert counts["answer"] > 0 and counts["abstain"] > 0 and counts["followup"] > 0
    entries = {e.id: e for e in services.knowledge.published() if e.kind == "faq"}
    for ex in examples.examples:
        system, target = ex.messages[0]["content"], ex.messages[-1]["content"]
        if ex.kind in ("answer", "followup"):
            assert target == entries[ex.group].answer
            assert f"[{ex.group}]" in system  # the answer is in the passages shown
        if ex.kind == "abstain":
            assert target == HANDOFF_REPLY
            assert f"[{ex.group}]" not in system  # ...and here it is not
        if ex.kind == "followup":
            assert [m["role"] for m in ex.messages] == [
                "system", "user", "assistant", "user", "assistant"
            ]


def test_customer_forms_of_a_question() -> None:
    import random

    from chatbot.training.noise import casual, customer_form, keywords, typo

    rng = random.Random(0)
    assert casual("How do I reset my password?", rng) == "how do i reset my password"
    assert keywords("How do I reset my password?", rng) == "reset password"
    assert keywords("Can I return it?", rng) == "can i return it"  # too little left: casual
    for seed in range(10):  # two neighbouring inner letters of "Where" or "parcel" swapped
        text = "Where is my parcel?"
        swapped = typo(text, random.Random(seed))
        diff = [i for i, (a, b) in enumerate(zip(text, swapped, strict=True)) if a != b]
        assert len(diff) == 2 and diff[1] == diff[0] + 1, swapped
        assert swapped[diff[0]] == text[diff[1]] and swapped[diff[1]] == text[diff[0]]
        assert diff[0] in (1, 2) or diff[0] in (13, 14, 15), swapped
    assert typo("Is it ok?", rng) == "Is it ok?"  # no word long enough
    forms = [customer_form("How long does delivery to Canada take?", random.Random(s))
             for s in range(20)]
    assert forms == [customer_form("How long does delivery to Canada take?", random.Random(s))
                     for s in range(20)]  # the same for the same seed
    assert len(set(forms)) > 3 and "How long does delivery to Canada take?" not in forms


def test_noisy_examples_answer_the_customer_style_question(make_services: Any) -> None:
    services = make_services()
    examples = _examples(services, abstain_share=0, followup_share=0, noisy_share=1.0)
    entries = {e.id: e for e in services.knowledge.published() if e.kind == "faq"}
    noisy = [ex for ex in examples.examples if ex.kind == "noisy"]
    assert noisy
    for ex in noisy:
        question, target = ex.messages[-2]["content"], ex.messages[-1]["content"]
        assert question not in entries[ex.group].variants()
        assert target == entries[ex.group].answer
        assert f"[{ex.group}]" in ex.messages[0]["content"]  # retrieval still shows the entry
    plain = _examples(services, abstain_share=0, followup_share=0, noisy_share=0.0)
    assert plain.counts().get("noisy", 0) == 0
    assert plain.counts()["answer"] == examples.counts()["answer"]


def test_no_abstain_example_where_other_passages_state_the_answer(make_services: Any,
                                                                  tiny_records: list[Any]) -> None:
    """A document that repeats an FAQ entry: "I can't answer" beside its facts is a wrong label,
    and it taught the demo model to abstain where it should answer."""
    from knowledge.records import Entry

    refund = next(r for r in tiny_records if getattr(r, "id", "") == "refund-time")
    copy = Entry(id="refund-copy", question="How are refunds paid out?", answer=refund.answer)
    services = make_services(records=[*tiny_records, copy])
    options = DataOptions(abstain_share=1.0, followup_share=0, seed=3)
    version = services.retriever.index().version
    args = (services.knowledge.published(version),
            lambda q, k: services.retriever.search(q, k), _shape(services), options)
    plain = build_examples(*args)
    checked = build_examples(*args, states_answer=answer_check(
        services.embedder.embed_sentences, services.settings.grounding_threshold,
        _shape(services).min_score,
    ))

    twin = {"refund-time": "[refund-copy]", "refund-copy": "[refund-time]"}

    def refund_abstains(examples: ExampleSet) -> list[Any]:
        return [ex for ex in examples.examples if ex.kind == "abstain"
                and ex.group in twin and twin[ex.group] in ex.messages[0]["content"]]

    assert refund_abstains(plain), "without the check, the copy's passage makes a wrong label"
    assert not refund_abstains(checked)
    assert checked.skipped_abstain >= len(refund_abstains(plain))
    assert checked.counts()["answer"] == plain.counts()["answer"]


def test_validation_holds_out_whole_phrasings_and_every_entry_is_learnt(
    make_services: Any,
) -> None:
    examples = _examples(make_services(), abstain_share=1.0, followup_share=1.0)
    train, val = examples.split(0.3, seed=1)
    assert train and val
    assert len(train) + len(val) == len(examples.examples)
    phrasings = {(ex.group, ex.phrasing) for ex in val}
    assert not phrasings & {(ex.group, ex.phrasing) for ex in train}
    assert all(phrasing != 0 for _, phrasing in phrasings)  # never an entry's main question
    # Every entry's answer is learnt, from its main question at least.
    answered = {ex.group for ex in train if ex.kind == "answer" and ex.phrasing == 0}
    assert answered == {ex.group for ex in examples.examples if ex.kind == "answer"}
    assert {ex.kind for ex in val} >= {"answer", "abstain"}
    with pytest.raises(Exception, match="validation-split"):
        examples.split(1.0, seed=1)


def test_with_one_question_per_entry_validation_holds_out_whole_entries() -> None:
    def example(group: str, kind: str = "answer") -> Example:
        return Example([{"role": "assistant", "content": "x"}], kind, group, 0)

    examples = ExampleSet([example(f"e{n}") for n in range(10)] + [example("e1", "abstain")])
    train, val = examples.split(0.2, seed=0)
    assert len({ex.group for ex in val}) == 2
    assert not {ex.group for ex in train} & {ex.group for ex in val}
    assert len(train) + len(val) == 11


def test_rated_up_replies_from_exported_conversations(tmp_path: Path, make_services: Any) -> None:
    export = tmp_path / "conversations.jsonl"
    rows = [
        {"id": "c1", "messages": [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "Hi! How can I help?"},
            {"role": "user", "content": "When will I get my refund?"},
            {"role": "assistant", "content": "Within 5 business days.", "rating": "up"},
            {"role": "user", "content": "thanks"},
            {"role": "assistant", "content": "You're welcome!", "rating": "down"},
        ]},
    ]
    export.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    exchanges = read_conversations(export)
    assert len(exchanges) == 1
    assert exchanges[0].question == "When will I get my refund?"
    assert exchanges[0].history == (("user", "hello"), ("assistant", "Hi! How can I help?"))
    services = make_services()
    version = services.retriever.index().version
    built = build_examples(
        services.knowledge.published(version),
        lambda q, k: services.retriever.search(q, k),
        _shape(services),
        DataOptions(abstain_share=0, followup_share=0),
        exchanges,
    )
    chats = [ex for ex in built.examples if ex.kind == "conversation"]
    assert len(chats) == 1
    assert [m["content"] for m in chats[0].messages[1:]] == [
        "hello", "Hi! How can I help?", "When will I get my refund?", "Within 5 business days."
    ]

    export.write_text('{"id": "c2"}\n', encoding="utf-8")
    with pytest.raises(Exception, match=r"conversations.jsonl:1: .*'messages'"):
        read_conversations(export)
