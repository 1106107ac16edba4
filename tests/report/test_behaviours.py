from research_rl.report.behaviours import Behaviours, flag, per_step

MISS = "<result>Doc 1: The film was directed by Ann Vel.</result>"
HIT = "<result>Doc 1: Ann Vel was born in Port Alder.</result>"


def _rollout(*parts: str, answer: str = "Port Alder") -> str:
    return "<think>plan</think>" + "".join(parts) + f"<answer>\\boxed{{{answer}}}</answer>"


def test_searching_again_after_a_result_without_the_answer_is_flagged():
    text = _rollout("<search>director</search>", MISS, "<search>Ann Vel birthplace</search>", HIT)
    flags = flag(text, ["Port Alder"])
    assert flags.search_after_miss
    assert "Ann Vel birthplace" in flags.evidence[0]


def test_no_flag_when_the_answer_was_already_found_or_never_searched_again():
    found_then_verified = _rollout("<search>q</search>", HIT, "<search>verify</search>", HIT)
    one_miss_then_answer = _rollout("<search>q</search>", MISS)
    no_search = _rollout()
    for text in (found_then_verified, one_miss_then_answer, no_search):
        assert not flag(text, ["Port Alder"]).search_after_miss, text


def test_answer_match_is_normalised_and_whole_word():
    text = _rollout(
        "<search>q</search>", "<result>born in PORT ALDER.</result>", "<search>again</search>", HIT
    )
    assert not flag(text, ["the port alder"]).search_after_miss  # case, article, punctuation
    partial = _rollout(
        "<search>q</search>", "<result>Port Aldershot</result>", "<search>again</search>", HIT
    )
    assert flag(partial, ["Port Alder"]).search_after_miss  # a longer word is not the answer


def test_without_golden_answers_a_miss_cannot_be_judged():
    text = _rollout("<search>q</search>", MISS, "<search>q2</search>", HIT)
    assert not flag(text, []).search_after_miss


def test_correction_cues_in_the_models_own_text_flag_a_revision():
    for cue in (
        "Wait, the result names another person.",
        "Actually it is Port Alder.",
        "I was wrong about the city.",
        "Let me re-check the birthplace.",
        "My earlier answer was a guess.",
    ):
        text = _rollout("<search>q</search>", HIT, f"<think>{cue}</think>")
        flags = flag(text, ["Port Alder"])
        assert flags.revision, cue
        assert flags.names() == ["revision"]


def test_cues_in_retrieved_passages_or_inside_words_do_not_count():
    in_result = _rollout("<search>q</search>", "<result>Wait Until Dark, actually a film.</result>")
    inside_word = _rollout("<think>The awaited sequel was factually accurate.</think>")
    assert not flag(in_result, ["Port Alder"]).revision
    assert not flag(inside_word, ["Port Alder"]).revision


def test_two_different_boxed_answers_are_a_revision_the_same_one_twice_is_not():
    changed = "<think>First guess \\boxed{Port Birch}.</think><answer>\\boxed{Port Alder}</answer>"
    repeated = "<think>So \\boxed{Port Alder}.</think><answer>\\boxed{port alder}</answer>"
    assert flag(changed, ["Port Alder"]).revision
    assert "2 different boxed answers" in flag(changed, ["Port Alder"]).evidence
    assert not flag(repeated, ["Port Alder"]).revision


def test_completion_that_starts_inside_the_prompts_think_span():
    # The prompt ended with "<think>", so the completion's first tag closes it.
    text = (
        "Wait, I need the director first.</think><search>q</search>"
        + MISS
        + "<search>q2</search>"
        + HIT
        + "<answer>\\boxed{Port Alder}</answer>"
    )
    flags = flag(text, ["Port Alder"])
    assert flags.revision and flags.search_after_miss


def test_per_step_counts_and_rates():
    both, none, revision = Behaviours(True, True), Behaviours(), Behaviours(revision=True)
    counts = per_step([(2, [both, none, revision, none]), (1, [none])])
    assert counts == [
        {
            "step": 1,
            "rollouts": 1,
            "search_after_miss": 0,
            "search_after_miss_rate": 0.0,
            "revision": 0,
            "revision_rate": 0.0,
        },
        {
            "step": 2,
            "rollouts": 4,
            "search_after_miss": 1,
            "search_after_miss_rate": 0.25,
            "revision": 2,
            "revision_rate": 0.5,
        },
    ]


def test_a_result_the_model_wrote_itself_is_not_evidence_but_is_its_own_text():
    made_up = "<think>plan</think><result>Doc 1: nothing useful</result><search>q</search>" + HIT
    assert not flag(made_up, ["Port Alder"]).search_after_miss
    assert flag("<think>plan</think><result>Wait, I recall Port Birch</result>", ["x"]).revision
