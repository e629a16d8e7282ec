"""Offline factory for small random-weight models of real transformers architectures.

Tests cannot reach the Hugging Face Hub, so every model the bot knows how to run is
rebuilt here from scratch: a tokenizer trained with the `tokenizers` library on a
built-in English corpus, plus a config/model of the real architecture with random
weights, all written with `save_pretrained`. The results load with the ordinary
`AutoConfig` / `AutoTokenizer` / `AutoModelFor*` `from_pretrained(path)` calls.

size="tiny" is for unit tests (whole `build_all` takes seconds); size="real" keeps
the published shapes (layers, widths, vocab_size) for memory/latency benchmarks.
The weights are random either way, so outputs are meaningless but deterministic.

Note for transformers 5: model-specific tokenizer classes (BertTokenizer,
RobertaTokenizer, GPT2Tokenizer, T5Tokenizer, ...) rebuild their normalizer /
pre-tokenizer / decoder in `__init__` and only take the vocab (and merges) from
tokenizer.json when loading. So each tokenizer here is trained with exactly the
pipeline that class rebuilds, then re-created through that class, so what we save
is what a later `from_pretrained` reconstructs.
"""

from __future__ import annotations

import json
import os
import random
import string
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The generation models' own sampling (their generation_config), used where a request gives none.
SAMPLED = ("gpt2", "llama", "t5")
SAMPLED_BY_DEFAULT = {"do_sample": True, "temperature": 0.7, "top_p": 0.95, "top_k": 0}
KINDS = ("sentiment", "nli", "fill_mask", "gpt2", "llama", "t5", "embedding", "ner", "qa", "marian", "bart")
SIZES = ("tiny", "real")

# Vocabulary the trainers aim for (both sizes); a few hundred sentences yield less.
_VOCAB_TARGET = 2000

# ChatML template in the shape of SmolLM2-Instruct's (system prompt injected when absent).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# --------------------------------------------------------------------------- corpus


def corpus() -> list[str]:
    """Return a deterministic English corpus of a few hundred varied sentences.

    Covers the bot's domains (sports, politics, tech, food, weather, questions,
    positive/negative reviews, chat, zero-shot hypotheses) so common words become
    whole tokens instead of long runs of characters.
    """
    rng = random.Random(1234)
    fill: dict[str, list[str]] = {
        "team": [
            "the Lakers",
            "Real Madrid",
            "the Yankees",
            "Manchester United",
            "the Patriots",
            "Barcelona",
            "the Warriors",
            "the national team",
            "our local club",
            "the Red Sox",
        ],
        "sport": [
            "football",
            "basketball",
            "tennis",
            "baseball",
            "soccer",
            "hockey",
            "golf",
            "cricket",
            "rugby",
            "swimming",
        ],
        "player": [
            "the striker",
            "the goalkeeper",
            "the captain",
            "the rookie",
            "the coach",
            "the veteran forward",
            "the young pitcher",
        ],
        "pol": [
            "the president",
            "the senator",
            "the prime minister",
            "parliament",
            "the governor",
            "the city council",
            "the opposition party",
            "Congress",
            "the minister",
        ],
        "policy": [
            "a new tax bill",
            "healthcare reform",
            "the climate agreement",
            "the budget",
            "immigration policy",
            "election rules",
            "the trade deal",
            "education funding",
        ],
        "tech": [
            "the new phone",
            "the laptop",
            "this app",
            "the software update",
            "the AI model",
            "the graphics card",
            "the smartwatch",
            "the operating system",
            "the browser",
            "the cloud service",
            "the chatbot",
            "the camera",
        ],
        "company": [
            "Apple",
            "Google",
            "Microsoft",
            "Amazon",
            "a small startup",
            "Samsung",
            "OpenAI",
            "Intel",
            "Nvidia",
            "Discord",
        ],
        "food": [
            "pizza",
            "sushi",
            "pasta",
            "the burger",
            "tacos",
            "the soup",
            "chocolate cake",
            "fried rice",
            "the salad",
            "ramen",
            "pancakes",
            "curry",
            "the steak",
            "ice cream",
        ],
        "place": [
            "the restaurant",
            "the cafe",
            "this bakery",
            "the diner",
            "the food truck",
            "the hotel",
            "the bar downtown",
        ],
        "weather": [
            "sunny",
            "rainy",
            "cloudy",
            "windy",
            "snowy",
            "foggy",
            "stormy",
            "hot",
            "cold",
            "humid",
            "freezing",
            "mild",
        ],
        "city": [
            "London",
            "Paris",
            "Tokyo",
            "New York",
            "Berlin",
            "Sydney",
            "Toronto",
            "Madrid",
            "Rome",
            "Chicago",
            "Seattle",
            "Mumbai",
        ],
        "day": ["today", "tomorrow", "on Monday", "this weekend", "next week", "tonight", "on Friday", "this morning"],
        "pos": [
            "amazing",
            "excellent",
            "wonderful",
            "fantastic",
            "great",
            "delightful",
            "brilliant",
            "superb",
            "lovely",
            "outstanding",
            "perfect",
            "impressive",
        ],
        "neg": [
            "terrible",
            "awful",
            "horrible",
            "disappointing",
            "boring",
            "bad",
            "poor",
            "dreadful",
            "mediocre",
            "useless",
            "broken",
            "annoying",
        ],
        "thing": [
            "movie",
            "book",
            "album",
            "show",
            "game",
            "product",
            "service",
            "meal",
            "concert",
            "hotel",
            "phone",
            "headphones",
        ],
        "topic": [
            "sports",
            "politics",
            "technology",
            "food",
            "weather",
            "business",
            "health",
            "science",
            "music",
            "travel",
            "entertainment",
            "finance",
        ],
        "num": [str(n) for n in (2, 3, 5, 7, 10, 12, 20, 42, 99, 100, 250, 1000, 2024)],
    }
    templates = [
        # sports
        "{team} won the {sport} match {day}.",
        "{player} scored twice in the second half.",
        "{team} lost {num} games in a row.",
        "Who will win the {sport} championship this year?",
        "The {sport} season starts {day} and fans are excited.",
        "{player} signed a new contract with {team}.",
        # politics
        "{pol} announced {policy} {day}.",
        "{pol} voted against {policy}.",
        "Critics say {policy} will hurt working families.",
        "Supporters believe {policy} will help the economy.",
        "The election results surprised {pol}.",
        "What does {pol} think about {policy}?",
        # tech
        "{company} released {tech} {day}.",
        "{tech} is much faster than the old version.",
        "{tech} keeps crashing after the latest update.",
        "How do I install {tech} on my computer?",
        "{company} is investing {num} million dollars in artificial intelligence.",
        "The battery of {tech} lasts {num} hours.",
        # food
        "The {food} at {place} was {pos}.",
        "The {food} at {place} was {neg}.",
        "I cooked {food} for dinner {day}.",
        "Can you recommend a recipe for {food}?",
        "{place} serves the best {food} in {city}.",
        # weather
        "It will be {weather} in {city} {day}.",
        "The forecast for {city} says {weather} and {weather} weather.",
        "What is the weather like in {city} {day}?",
        "Temperatures will drop to {num} degrees {day}.",
        # reviews
        "This {thing} was {pos}, I loved every minute of it.",
        "This {thing} was {neg}, I want my money back.",
        "Absolutely {pos} {thing}, highly recommended!",
        "What a {neg} {thing}. Never again.",
        "I really enjoyed the {thing}; it was {pos}.",
        "I did not like the {thing} at all. It was {neg}.",
        "The {thing} is not {pos}, it is {neg}.",
        "Honestly, the {thing} was better than I expected.",
        # questions, chat, general knowledge
        "What is the capital of France?",
        "Why is the sky blue?",
        "Can you help me write an email to my boss?",
        "Please summarize this article about {topic}.",
        "This example is {topic}.",
        "This text is about {topic}.",
        "The news today is mostly about {topic}.",
        "{city} is a great city to visit in the summer.",
        "Hello! How can I help you today?",
        "Thanks for the help, have a nice day!",
        "I have {num} questions about {topic}.",
    ]
    fixed = [
        "Paris is the capital of France.",
        "Berlin is the capital of Germany.",
        "Tokyo is the capital of Japan.",
        "The quick brown fox jumps over the lazy dog.",
        "Once upon a time, there was a little robot who wanted to learn.",
        "The meeting is at 10:30 AM, don't be late!",
        "Water boils at 100 degrees Celsius.",
        "I'm not sure, but I think it's going to rain.",
        "She said: \"That's the best thing I've ever eaten.\"",
        "Prices rose by 3.5% last year; wages didn't.",
        "Email me at support@example.com or visit https://example.com.",
        "Translate English to German: The house is wonderful.",
        "summarize: The council met on Tuesday to discuss the new park.",
        "question: What color is the sky? context: The sky is blue.",
        "You are a helpful assistant.",
        "The user asked a question and the assistant answered it.",
        "Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 100 1000.",
        "Symbols: ( ) [ ] { } < > # $ % & * + - = / \\ | ~ ^ _ ` @ ! ? . , ; : ' \"",
    ]
    out = list(fixed)
    for _ in range(10):  # several passes give each template different fillers
        for t in templates:
            out.append(t.format_map(_Picker(fill, rng)))
    # Capitalize first letters the way real text is written.
    return [s[0].upper() + s[1:] for s in out]


class _Picker(dict):
    """format_map helper: each {slot} draws a fresh random filler."""

    def __init__(self, fill: dict[str, list[str]], rng: random.Random) -> None:
        super().__init__()
        self._fill, self._rng = fill, rng

    def __missing__(self, key: str) -> str:
        return self._rng.choice(self._fill[key])


# --------------------------------------------------------------------------- tokenizers


def _bpe_vocab_merges(tok: Any) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Pull vocab and merges out of a trained BPE `tokenizers.Tokenizer`."""
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return model["vocab"], merges


def _train_wordpiece(lines: list[str]) -> dict[str, int]:
    """Lowercase BERT WordPiece vocab with [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4.

    `WordPieceTrainer` is not reproducible (it numbers the "##x" symbols in hash
    order, which changes merge tie-breaks and even the vocab size between runs).
    So this trains a plain BPE, whose symbols all come from a sorted alphabet, on
    words marked with a leading "▁", then renames: "▁word" -> "word" (word start),
    "piece" -> "##piece" (continuation). The result is an ordinary WordPiece vocab.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    # Split words exactly as BertTokenizer will (lowercase, accents stripped, punctuation apart).
    norm, pre = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = [" ".join("▁" + w for w, _ in pre.pre_tokenize_str(norm.normalize_str(line))) for line in lines]
    alphabet = sorted({c for c in string.printable if not c.isspace() and not c.isupper()})
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(vocab_size=_VOCAB_TARGET, initial_alphabet=alphabet + ["▁"], show_progress=False)
    tok.train_from_iterator(words, trainer)
    bpe = tok.get_vocab()

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])}
    for piece in sorted(bpe, key=bpe.get):
        if piece != "▁":
            vocab.setdefault(piece[1:] if piece.startswith("▁") else "##" + piece, len(vocab))
    # Every character as a word start, and letters/digits also as "##" continuations,
    # so unseen words split into pieces instead of collapsing into one [UNK].
    for c in alphabet:
        vocab.setdefault(c, len(vocab))
    for c in string.ascii_lowercase + string.digits:
        vocab.setdefault("##" + c, len(vocab))
    return vocab


def _train_byte_bpe(lines: list[str], specials: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE (GPT-2/RoBERTa style); `specials` get ids 0..n-1 in order."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_TARGET,
        special_tokens=specials,
        # All 256 byte symbols: any input text stays encodable (no unk needed).
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer)
    return _bpe_vocab_merges(tok)


def _train_unigram(lines: list[str]) -> list[tuple[str, float]]:
    """SentencePiece-style Unigram vocab with <pad>=0 </s>=1 <unk>=2 (T5 layout)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    # Same pre-tokenizer T5Tokenizer rebuilds on load.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
        ]
    )
    trainer = trainers.UnigramTrainer(
        vocab_size=_VOCAB_TARGET,
        special_tokens=["<pad>", "</s>", "<unk>"],
        unk_token="<unk>",
        initial_alphabet=[c for c in string.printable if not c.isspace()] + ["▁"],
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer)
    trained = json.loads(tok.to_str())["model"]["vocab"]  # [[piece, score], ...], specials first
    # The trainer is not reproducible bit-for-bit: scores carry ~1e-11 float noise and
    # characters it re-adds at the end get 1e-4-step scores in hash order. Rounding to
    # 0.1 and sorting by (score, piece) gives the same vocab and ids on every run.
    pieces = sorted(((p, round(float(sc), 1)) for p, sc in trained[3:]), key=lambda ps: (-ps[1], ps[0]))
    vocab = [(p, 0.0) for p, _ in trained[:3]] + pieces
    # Sentinels at the end of the vocab, <extra_id_99> first, as in the real T5 vocab.
    vocab += [(f"<extra_id_{i}>", 0.0) for i in range(99, -1, -1)]
    return vocab


def _marian_tokenizer(lines: list[str], max_len: int) -> Any:
    """opus-mt's layout: one SentencePiece model for each side (here the same one) and a vocab.json of its
    pieces, </s>=0 and <unk>=1 first and <pad> last; the language pair in the tokenizer's config."""
    import io

    import sentencepiece
    from transformers import MarianTokenizer

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=480,
        hard_vocab_limit=False,  # a few hundred sentences give fewer pieces than real opus-mt has
        model_type="unigram",
        num_threads=1,  # one thread: the same pieces on every run
        bos_id=-1,
        eos_id=-1,
        unk_id=0,
        minloglevel=2,
    )
    processor = sentencepiece.SentencePieceProcessor(model_proto=model.getvalue())
    pieces = ["</s>", "<unk>", *(processor.id_to_piece(i) for i in range(1, processor.get_piece_size())), "<pad>"]
    folder = Path(tempfile.mkdtemp(prefix="marian-tokenizer-"))
    for side in ("source.spm", "target.spm"):
        (folder / side).write_bytes(model.getvalue())
    (folder / "vocab.json").write_text(json.dumps({piece: i for i, piece in enumerate(pieces)}))
    return MarianTokenizer(
        str(folder / "source.spm"),
        str(folder / "target.spm"),
        str(folder / "vocab.json"),
        source_lang="en",
        target_lang="de",
        model_max_length=max_len,
    )


def _make_tokenizer(kind: str, max_len: int) -> Any:
    """Train and wrap the tokenizer for `kind` in the class its real checkpoint uses."""
    from tokenizers import AddedToken
    from transformers import BertTokenizer, DistilBertTokenizer, GPT2Tokenizer, RobertaTokenizer, T5Tokenizer

    lines = corpus()
    if kind in ("sentiment", "embedding", "ner", "qa"):
        cls = DistilBertTokenizer if kind in ("sentiment", "qa") else BertTokenizer
        # dslim/bert-base-NER and distilbert-base-cased-distilled-squad are cased: names keep their capitals.
        cased = kind in ("ner", "qa")
        return cls(vocab=_train_wordpiece(lines), do_lower_case=not cased, model_max_length=max_len)
    if kind == "marian":
        return _marian_tokenizer(lines, max_len)
    if kind in ("nli", "fill_mask", "bart"):
        vocab, merges = _train_byte_bpe(lines, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        # Real RoBERTa/BART <mask> swallows the space before it ("is <mask>.").
        mask = AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)
        return RobertaTokenizer(vocab=vocab, merges=merges, mask_token=mask, model_max_length=max_len)
    if kind == "gpt2":
        vocab, merges = _train_byte_bpe(lines, ["<|endoftext|>"])
        # Like real gpt2: no pad token, no chat template.
        return GPT2Tokenizer(vocab=vocab, merges=merges, model_max_length=max_len)
    if kind == "llama":
        # SmolLM2 ships a byte-level BPE GPT2Tokenizer with these three specials at ids 0-2.
        vocab, merges = _train_byte_bpe(lines, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
        return GPT2Tokenizer(
            vocab=vocab,
            merges=merges,
            unk_token="<|endoftext|>",
            bos_token="<|im_start|>",
            eos_token="<|im_end|>",
            pad_token="<|im_end|>",
            chat_template=CHATML_TEMPLATE,
            model_max_length=max_len,
        )
    if kind == "t5":
        return T5Tokenizer(vocab=_train_unigram(lines), extra_ids=100, model_max_length=max_len)
    raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")


# --------------------------------------------------------------------------- models


def _vocab_size(tok: Any, real: int, size: str) -> int:
    """Real shapes keep the published vocab; tiny uses exactly what the tokenizer has."""
    n = len(tok)
    if size == "real":
        if n > real:
            raise RuntimeError(f"trained tokenizer has {n} tokens, more than the real vocab {real}")
        return real
    return n


def _sentiment(tok: Any, size: str) -> Any:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    shape = (
        dict(dim=768, n_layers=6, n_heads=12, hidden_dim=3072)
        if size == "real"
        else dict(dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    )
    cfg = DistilBertConfig(
        vocab_size=_vocab_size(tok, 30522, size),
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        seq_classif_dropout=0.2,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
        **shape,
    )
    return DistilBertForSequenceClassification(cfg)


def _nli(tok: Any, size: str) -> Any:
    from transformers import BartConfig, BartForSequenceClassification

    # distilbart-mnli-12-1: 12 encoder layers, 1 decoder layer.
    shape = (
        dict(
            d_model=1024,
            encoder_layers=12,
            decoder_layers=1,
            encoder_attention_heads=16,
            decoder_attention_heads=16,
            encoder_ffn_dim=4096,
            decoder_ffn_dim=4096,
            max_position_embeddings=1024,
        )
        if size == "real"
        else dict(
            d_model=32,
            encoder_layers=2,
            decoder_layers=1,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            max_position_embeddings=512,
        )
    )
    eos = tok.eos_token_id
    cfg = BartConfig(
        vocab_size=_vocab_size(tok, 50265, size),
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=eos,
        decoder_start_token_id=eos,
        forced_eos_token_id=eos,
        id2label={0: "contradiction", 1: "neutral", 2: "entailment"},
        label2id={"contradiction": 0, "neutral": 1, "entailment": 2},
        **shape,
    )
    return BartForSequenceClassification(cfg)


def _fill_mask(tok: Any, size: str) -> Any:
    from transformers import RobertaConfig, RobertaForMaskedLM

    shape = (
        dict(hidden_size=768, num_hidden_layers=6, num_attention_heads=12, intermediate_size=3072)
        if size == "real"
        else dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    )
    cfg = RobertaConfig(
        vocab_size=_vocab_size(tok, 50265, size),
        # RoBERTa positions start after padding_idx, so 512 tokens need 514 rows.
        max_position_embeddings=514,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        **shape,
    )
    return RobertaForMaskedLM(cfg)


def _gpt2(tok: Any, size: str) -> Any:
    from transformers import GPT2Config, GPT2LMHeadModel

    shape = (
        dict(n_embd=768, n_layer=12, n_head=12, n_positions=1024)
        if size == "real"
        else dict(n_embd=32, n_layer=2, n_head=2, n_positions=512)
    )
    eos = tok.eos_token_id
    cfg = GPT2Config(vocab_size=_vocab_size(tok, 50257, size), bos_token_id=eos, eos_token_id=eos, **shape)
    return GPT2LMHeadModel(cfg)


def _llama(tok: Any, size: str) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    # SmolLM2-135M: GQA 9 query / 3 kv heads, tied embeddings, rope_theta 1e5.
    shape = (
        dict(
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            max_position_embeddings=8192,
        )
        if size == "real"
        else dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
        )
    )
    cfg = LlamaConfig(
        vocab_size=_vocab_size(tok, 49152, size),
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **shape,
    )
    return LlamaForCausalLM(cfg)


def _t5(tok: Any, size: str) -> Any:
    from transformers import T5Config, T5ForConditionalGeneration

    shape = (
        dict(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6, num_heads=8)
        if size == "real"
        else dict(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4)
    )
    cfg = T5Config(
        vocab_size=_vocab_size(tok, 32128, size),
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        # T5 starts decoding from the pad token.
        decoder_start_token_id=tok.pad_token_id,
        **shape,
    )
    return T5ForConditionalGeneration(cfg)


def _embedding(tok: Any, size: str) -> Any:
    from transformers import BertConfig, BertModel

    # all-MiniLM-L6-v2 shapes; no task head, callers mean-pool last_hidden_state.
    shape = (
        dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
        if size == "real"
        else dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
    )
    cfg = BertConfig(
        vocab_size=_vocab_size(tok, 30522, size), max_position_embeddings=512, pad_token_id=tok.pad_token_id, **shape
    )
    return BertModel(cfg)  # keeps the pooler, as the real checkpoint does


NER_LABELS = ("O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")  # CoNLL-03's


def _ner(tok: Any, size: str) -> Any:
    from transformers import BertConfig, BertForTokenClassification

    # dslim/bert-base-NER shapes (BERT base, cased) with CoNLL-03's nine tags.
    shape = (
        dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
        if size == "real"
        else dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
    )
    cfg = BertConfig(
        vocab_size=_vocab_size(tok, 28996, size),
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        id2label=dict(enumerate(NER_LABELS)),
        label2id={label: i for i, label in enumerate(NER_LABELS)},
        architectures=["BertForTokenClassification"],
        **shape,
    )
    return BertForTokenClassification(cfg)


def _qa(tok: Any, size: str) -> Any:
    from transformers import DistilBertConfig, DistilBertForQuestionAnswering

    # distilbert-base-cased-distilled-squad shapes: a start and an end logit per token.
    shape = (
        dict(dim=768, n_layers=6, n_heads=12, hidden_dim=3072)
        if size == "real"
        else dict(dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    )
    cfg = DistilBertConfig(
        vocab_size=_vocab_size(tok, 28996, size),
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        architectures=["DistilBertForQuestionAnswering"],
        **shape,
    )
    return DistilBertForQuestionAnswering(cfg)


def _marian(tok: Any, size: str) -> Any:
    from transformers import MarianConfig, MarianMTModel

    # Helsinki-NLP/opus-mt-en-de: 6+6 layers of 512, 8 heads, shared embeddings, 4 beams by default.
    shape = (
        dict(d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8, decoder_attention_heads=8)
        | dict(encoder_ffn_dim=2048, decoder_ffn_dim=2048, max_position_embeddings=512)
        if size == "real"
        else dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4)
        | dict(encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=512)
    )
    cfg = MarianConfig(
        vocab_size=_vocab_size(tok, 58101, size),
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.pad_token_id,  # Marian starts decoding from <pad>
        forced_eos_token_id=tok.eos_token_id,
        **shape,
    )
    model = MarianMTModel(cfg)
    model.generation_config.num_beams = 4  # as opus-mt ships it
    model.generation_config.bad_words_ids = [[tok.pad_token_id]]
    return model


def _bart(tok: Any, size: str) -> Any:
    from transformers import BartConfig, BartForConditionalGeneration

    # sshleifer/distilbart-cnn-12-6: 12 encoder and 6 decoder layers of 1024, a 1024-token context. The tiny
    # one reads 128 tokens, so a few sentences already need summarizing in parts.
    shape = (
        dict(d_model=1024, encoder_layers=12, decoder_layers=6, encoder_attention_heads=16, decoder_attention_heads=16)
        | dict(encoder_ffn_dim=4096, decoder_ffn_dim=4096, max_position_embeddings=1024)
        if size == "real"
        else dict(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=4)
        | dict(encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128)
    )
    eos = tok.eos_token_id
    cfg = BartConfig(
        vocab_size=_vocab_size(tok, 50264, size),
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=eos,
        decoder_start_token_id=eos,
        forced_bos_token_id=tok.bos_token_id,
        forced_eos_token_id=eos,
        **shape,
    )
    model = BartForConditionalGeneration(cfg)
    model.generation_config.num_beams = 4  # as the CNN summarizers ship it
    model.generation_config.no_repeat_ngram_size = 3
    return model


_BUILDERS: dict[str, Callable[[Any, str], Any]] = {
    "sentiment": _sentiment,
    "nli": _nli,
    "fill_mask": _fill_mask,
    "gpt2": _gpt2,
    "llama": _llama,
    "t5": _t5,
    "embedding": _embedding,
    "ner": _ner,
    "qa": _qa,
    "marian": _marian,
    "bart": _bart,
}

# Tokenizer model_max_length per kind: (tiny, real), matching the model's positions.
_MAX_LEN = {
    "sentiment": (512, 512),
    "nli": (512, 1024),
    "fill_mask": (512, 512),
    "gpt2": (512, 1024),
    "llama": (512, 8192),
    "t5": (512, 512),
    "embedding": (512, 512),
    "ner": (512, 512),
    "qa": (512, 512),
    "marian": (512, 512),
    "bart": (128, 1024),
}


def _check_saved(saved: str, tok: Any, model: Any, kind: str) -> None:
    """Reload the saved tokenizer and fail the build if it disagrees with what we built.

    Guards against a transformers upgrade changing how a tokenizer class rebuilds
    itself from tokenizer.json, which would otherwise surface as baffling test failures.
    """
    from transformers import AutoTokenizer

    cfg, loaded = model.config, AutoTokenizer.from_pretrained(saved)
    lines = corpus()[:40] + ["An UNSEEN wörd, 42 times!"]
    if loaded(lines)["input_ids"] != tok(lines)["input_ids"]:
        raise RuntimeError(f"{kind}: reloaded tokenizer encodes differently from the one trained")
    top = max([i for ids in loaded(lines)["input_ids"] for i in ids] + [len(loaded) - 1])
    if top >= cfg.vocab_size:
        raise RuntimeError(f"{kind}: token id {top} >= vocab_size {cfg.vocab_size}")
    for name in ("pad_token_id", "eos_token_id", "bos_token_id"):
        want, got = getattr(cfg, name, None), getattr(loaded, name)
        if want is not None and got is not None and want != got:
            raise RuntimeError(f"{kind}: config {name}={want} but tokenizer has {got}")


def build_model(kind: str, out_dir: Path, size: str = "tiny") -> Path:
    """Build a random-weight `kind` model + trained tokenizer into `out_dir`; return `out_dir`.

    Idempotent: if `out_dir/config.json` already exists nothing is rebuilt. Files are
    written to a temp dir and moved in with config.json last, so a half-finished
    build is never mistaken for a complete one.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {SIZES}")
    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists():
        return out_dir

    import torch
    from transformers.utils import logging as hf_logging

    tok = _make_tokenizer(kind, _MAX_LEN[kind][size == "real"])
    torch.manual_seed(0)  # deterministic weights
    model = _BUILDERS[kind](tok, size).eval()
    if kind in SAMPLED:  # like a chat model's generation_config: sampled unless the member says otherwise
        model.generation_config.update(**SAMPLED_BY_DEFAULT)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # "Writing model shards" bars would clutter test output
    try:
        with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}-", dir=out_dir.parent) as tmp:
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            _check_saved(tmp, tok, model, kind)
            out_dir.mkdir(exist_ok=True)
            for name in sorted(os.listdir(tmp), key=lambda n: n == "config.json"):  # config.json last
                os.replace(os.path.join(tmp, name), out_dir / name)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return out_dir


def build_all(root: Path, size: str = "tiny") -> dict[str, Path]:
    """Build every kind under `root/<kind>`; return {kind: path}."""
    root = Path(root)
    return {kind: build_model(kind, root / kind, size) for kind in KINDS}


if __name__ == "__main__":  # handy: python -m tests.model_factory /tmp/models [tiny|real]
    import sys

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="models-"))
    for k, p in build_all(target, sys.argv[2] if len(sys.argv) > 2 else "tiny").items():
        print(f"{k:10s} {p}")
