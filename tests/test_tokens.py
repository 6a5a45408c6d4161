"""Item tokens and prompt encoding (DESIGN.md step 2)."""

from __future__ import annotations

import pytest
import torch

from dedit_app.tokens import (
    PLAIN_LENGTH,
    TOKEN_LENGTH,
    add_item_tokens,
    encode_items,
    encode_prompt,
    get_token_rows,
    item_word,
    make_token_strings,
    prompt_length,
    time_ids,
)


@pytest.mark.parametrize(
    ("name", "word"),
    [
        ("Red handbag", "handbag"),
        ("wall-other-merged", "wall"),
        ("dark red, top-left", "red"),
        ("Table 2", "table"),
        ("42", "item"),
        ("", "item"),
        ("Übergröße Tasche", "tasche"),
        ("supercalifragilistic", "supercalifra"),
    ],
)
def test_item_word_is_a_safe_word(name, word):
    assert item_word(name) == word


def test_token_strings_are_unique_and_prefixed():
    strings = make_token_strings(["bag", "bag", "Bag!"], n_tokens=3)
    assert strings == [
        "#bag0 #bag0_1 #bag0_2",
        "#bag1 #bag1_1 #bag1_2",
        "#bag2 #bag2_1 #bag2_2",
    ]
    ref = make_token_strings(["bag"], n_tokens=5, prefix="$")
    assert ref == ["$bag0 $bag0_1 $bag0_2 $bag0_3 $bag0_4"]
    tokens = [t for s in make_token_strings([f"x{i}" for i in range(12)]) for t in s.split()]
    assert len(set(tokens)) == len(tokens) == 60
    with pytest.raises(ValueError):
        make_token_strings(["a"], n_tokens=0)


def test_added_tokens_encode_to_their_own_ids(tiny_sdxl):
    names = ["bag"] * 11 + ["table"]
    strings = make_token_strings(names) + make_token_strings(["bag"], prefix="$")
    tokens = add_item_tokens(tiny_sdxl, strings, seed=0)
    assert len(tokens) == 13 * 5
    for tokenizer, base in zip(tiny_sdxl.tokenizers, tiny_sdxl.base_vocab):
        ids = tokenizer.convert_tokens_to_ids(tokens)
        assert ids == list(range(base, base + len(tokens)))
        # "#bag1" must not swallow the start of "#bag10", nor "#bag0" of "$bag0"
        for s in (strings[1], strings[10], strings[-1]):
            got = tokenizer(s).input_ids[1:-1]
            assert got == tokenizer.convert_tokens_to_ids(s.split())
        assert tiny_sdxl.text_encoders[0].get_input_embeddings().weight.shape[0] >= len(tokenizer)


def test_token_init_is_seeded_and_matches_table_statistics(tiny_sdxl):
    strings = make_token_strings([f"item{i}" for i in range(40)])
    base = [e.get_input_embeddings().weight.detach().clone() for e in tiny_sdxl.text_encoders]
    add_item_tokens(tiny_sdxl, strings, seed=7)
    tokens = [t for s in strings for t in s.split()]
    first = get_token_rows(tiny_sdxl, tokens)
    for encoder, table, rows in zip(tiny_sdxl.text_encoders, base, first):
        # the original rows are untouched
        assert torch.equal(encoder.get_input_embeddings().weight[: table.shape[0]], table)
        std, mean = torch.std_mean(table)
        assert abs(float(rows.mean() - mean)) < 0.1 * float(std)
        assert abs(float(rows.std() / std) - 1) < 0.1
    tiny_sdxl.reset()
    add_item_tokens(tiny_sdxl, strings, seed=7)
    again = get_token_rows(tiny_sdxl, tokens)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    tiny_sdxl.reset()
    add_item_tokens(tiny_sdxl, strings, seed=8)
    assert not torch.equal(get_token_rows(tiny_sdxl, tokens)[0], first[0])


def test_adding_twice_needs_a_reset(tiny_sdxl):
    from dedit_app.errors import ModelLoadError

    add_item_tokens(tiny_sdxl, make_token_strings(["a"]))
    with pytest.raises(ModelLoadError, match="reset"):
        add_item_tokens(tiny_sdxl, make_token_strings(["b"]))


def test_encode_items_lengths_dims_and_pooled_average(tiny_sdxl):
    strings = make_token_strings(["bag", "table", "wall"])
    add_item_tokens(tiny_sdxl, strings)
    # item 1's prompt is longer than 40 tokens: truncated at its own length, as if alone
    long = f"{strings[1]} " + "on a big old wooden table " * 6
    prompts = {0: strings[0], 2: "a white handbag", 1: long}
    assert prompt_length(tiny_sdxl, strings[0]) == TOKEN_LENGTH
    assert prompt_length(tiny_sdxl, "a white handbag") == PLAIN_LENGTH
    assert prompt_length(tiny_sdxl, f"a leather {strings[0]}") == TOKEN_LENGTH
    with torch.no_grad():
        cond = encode_items(tiny_sdxl, prompts)
        parts = {
            k: encode_prompt(tiny_sdxl, p, prompt_length(tiny_sdxl, p)) for k, p in prompts.items()
        }
    # both encoders' penultimate states side by side: 32 + 32 features
    assert cond.embeds.shape == (1, 40 + 40 + 77, 64)
    assert cond.items == [0, 1, 2]
    assert cond.key_items.tolist() == [0] * 40 + [1] * 40 + [2] * 77
    # one batched encoder call gives what each prompt gives alone, at its own length
    for k, (start, stop) in enumerate([(0, 40), (40, 80), (80, 157)]):
        torch.testing.assert_close(cond.embeds[:, start:stop], parts[k][0], rtol=1e-5, atol=1e-5)
    expected = torch.stack([parts[k][1] for k in (0, 1, 2)]).mean(0)
    torch.testing.assert_close(cond.pooled, expected, rtol=1e-5, atol=1e-5)
    assert cond.pooled.shape == (1, 32)


def test_plain_prompt_matches_diffusers_encode_prompt(tiny_sdxl, tiny_sdxl_path):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl_path, use_safetensors=True)
    with torch.no_grad():
        embeds, _, pooled, _ = pipe.encode_prompt(
            "a photo of a cat", do_classifier_free_guidance=False
        )
        ours, our_pooled = encode_prompt(tiny_sdxl, "a photo of a cat", PLAIN_LENGTH)
    torch.testing.assert_close(ours, embeds)
    torch.testing.assert_close(our_pooled, pooled)


def test_sd15_encoding_has_one_encoder_and_no_pooled(tiny_sd15_path):
    from dedit_app.models import load_model

    m = load_model(tiny_sd15_path, device="cpu")
    strings = make_token_strings(["bag"])
    add_item_tokens(m, strings)
    with torch.no_grad():
        cond = encode_items(m, {0: strings[0]})
        both = encode_items(m, {0: strings[0], 1: "a red bag"})
        alone = encode_prompt(m, "a red bag", PLAIN_LENGTH)[0]
    assert cond.embeds.shape == (1, 40, 32) and cond.pooled is None
    torch.testing.assert_close(both.embeds[:, :40], cond.embeds, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(both.embeds[:, 40:], alone, rtol=1e-5, atol=1e-5)
    assert time_ids(m, (320, 192)) is None


def test_time_ids_follow_the_bucket(tiny_sdxl):
    ids = time_ids(tiny_sdxl, (832, 1216), batch=2)
    assert ids.tolist() == [[832, 1216, 0, 0, 832, 1216]] * 2
