"""The requests a benchmark sends: seeded texts, Poisson arrival times, percentiles.

Everything here is deterministic for a given seed, so the naive loop, the raw
ceiling and the engine see exactly the same request set and the same schedule.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

# The English vocabulary of tests/model_factory.py's corpus (word:count), frozen here so
# runs stay comparable if that corpus changes. The factory's tokenizers were trained on
# it, so these words cost ~1.1-1.4 tokens each, as real English does with the real
# checkpoints' tokenizers (words outside it would split into ~2.3 tokens each).
_VOCAB = """
the:411 is:117 this:92 i:91 a:71 was:71 in:70 it:51 about:50 will:50 what:41 for:40 help:40 to:34 at:33 of:33
you:31 can:30 my:30 today:28 weather:26 on:25 new:23 and:21 not:21 have:20 how:20 like:20 service:20 than:20
election:18 hotel:15 tonight:15 update:15 city:14 capital:13 great:13 example:12 morning:12 sky:12 weekend:12
are:11 be:11 best:11 blue:11 degrees:11 email:11 france:11 me:11 summarize:11 think:11 visit:11 who:11 year:11
absolutely:10 after:10 again:10 against:10 all:10 an:10 announced:10 article:10 artificial:10 back:10
battery:10 believe:10 better:10 boss:10 championship:10 computer:10 contract:10 cooked:10 crashing:10
critics:10 day:10 did:10 dinner:10 do:10 does:10 dollars:10 drop:10 economy:10 enjoyed:10 every:10 excited:10
expected:10 families:10 fans:10 faster:10 forecast:10 games:10 half:10 hello:10 highly:10 honestly:10 hours:10
hurt:10 install:10 intelligence:10 investing:10 keeps:10 lasts:10 latest:10 lost:10 loved:10 match:10
million:10 minute:10 money:10 mostly:10 much:10 never:10 news:10 nice:10 old:10 please:10 questions:10
really:10 recipe:10 recommend:10 recommended:10 released:10 results:10 row:10 say:10 says:10 scored:10
season:10 second:10 serves:10 signed:10 starts:10 summer:10 supporters:10 surprised:10 temperatures:10 text:10
thanks:10 tomorrow:10 twice:10 version:10 voted:10 want:10 why:10 win:10 with:10 won:10 working:10 write:10
game:9 immigration:9 minister:9 next:9 policy:9 sushi:9 travel:9 week:9 album:8 awful:8 food:8 national:8
phone:8 product:8 rules:8 team:8 agreement:7 book:7 climate:7 cloud:7 congress:7 fantastic:7 friday:7
impressive:7 monday:7 pitcher:7 seattle:7 useless:7 young:7 app:6 bill:6 brilliant:6 browser:6 budget:6
chatbot:6 chicago:6 education:6 funding:6 mediocre:6 mild:6 mumbai:6 operating:6 opposition:6 pancakes:6
party:6 pasta:6 politics:6 restaurant:6 sydney:6 system:6 tax:6 tokyo:6 amazing:5 bar:5 berlin:5 concert:5
council:5 delightful:5 diner:5 downtown:5 headphones:5 lakers:5 music:5 poor:5 president:5 prime:5 rome:5
software:5 truck:5 barcelona:4 baseball:4 cake:4 chocolate:4 cream:4 deal:4 discord:4 football:4 freezing:4
fried:4 golf:4 governor:4 health:4 healthcare:4 hockey:4 horrible:4 ice:4 lovely:4 madrid:4 meal:4 movie:4
nvidia:4 parliament:4 reform:4 rice:4 science:4 show:4 steak:4 tacos:4 technology:4 tennis:4 terrible:4
trade:4 windy:4 wonderful:4 yankees:4 annoying:3 apple:3 bad:3 basketball:3 boring:3 card:3 disappointing:3
finance:3 foggy:3 forward:3 goalkeeper:3 graphics:3 humid:3 intel:3 laptop:3 london:3 outstanding:3 ramen:3
snowy:3 sports:3 superb:3 toronto:3 veteran:3 assistant:2 bakery:2 broken:2 business:2 camera:2 captain:2
cloudy:2 club:2 coach:2 cold:2 com:2 cricket:2 dreadful:2 excellent:2 local:2 openai:2 our:2 patriots:2
perfect:2 pizza:2 question:2 rugby:2 soccer:2 soup:2 striker:2 warriors:2 york:2 ':1 ai:1 am:1 amazon:1
answered:1 asked:1 boils:1 brown:1 but:1 by:1 cafe:1 celsius:1 color:1 context:1 curry:1 didn't:1 discuss:1
dog:1 don't:1 eaten:1 english:1 entertainment:1 ever:1 fox:1 german:1 germany:1 going:1 helpful:1 hot:1
house:1 https:1 i'm:1 i've:1 it's:1 japan:1 jumps:1 last:1 late:1 lazy:1 learn:1 little:1 manchester:1
meeting:1 met:1 microsoft:1 model:1 numbers:1 once:1 or:1 over:1 paris:1 park:1 prices:1 quick:1 rain:1
rainy:1 real:1 red:1 robot:1 rookie:1 rose:1 said:1 salad:1 samsung:1 senator:1 she:1 small:1 smartwatch:1
sox:1 startup:1 sunny:1 support:1 sure:1 swimming:1 symbols:1 that's:1 there:1 thing:1 time:1 translate:1
tuesday:1 united:1 upon:1 user:1 wages:1 wanted:1 water:1
"""
WORDS = [item.rsplit(":", 1)[0] for item in _VOCAB.split()]
# sqrt of the corpus counts: frequent words stay frequent without "the" taking 14%.
WEIGHTS = [int(item.rsplit(":", 1)[1]) ** 0.5 for item in _VOCAB.split()]

GENERATION_OPENERS = [
    "Write a short story about",
    "Explain to a friend why",
    "Here is my review of",
    "The best way to spend a weekend is",
    "Yesterday at the game",
    "My favourite recipe is",
    "The weather forecast says",
    "In the meeting today the team",
    "Once upon a time",
    "The new phone update",
    "A good reason to learn to code is",
    "Tell me about",
]

ZERO_SHOT_LABELS = ("sports", "politics", "technology", "food")  # 4 labels, one guild label set
MASK = "<mask>"  # the engine also accepts [MASK] and ___; the fill-mask pipeline needs the model's own


def sentence(rng: random.Random, n_words: int) -> str:
    words = rng.choices(WORDS, weights=WEIGHTS, k=n_words)
    # Break long texts into sentences of 6-15 words, as people write.
    out, since = [], 0
    for i, w in enumerate(words):
        if since == 0:
            w = w.capitalize()
        since += 1
        end = i == len(words) - 1 or (since >= 6 and rng.random() < 0.15)
        out.append(w + ("." if end else ""))
        if end:
            since = 0
    return " ".join(out)


def texts(seed: int, n: int, lo: int = 5, hi: int = 60) -> list[str]:
    """n texts of lo..hi words (uniform), seeded."""
    rng = random.Random(seed)
    return [sentence(rng, rng.randint(lo, hi)) for _ in range(n)]


def masked_texts(seed: int, n: int, lo: int = 5, hi: int = 60) -> list[str]:
    """Texts with exactly one `<mask>` replacing a word (never the first)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = sentence(rng, rng.randint(lo, hi)).split(" ")
        i = rng.randrange(1, len(words))
        words[i] = MASK + ("." if words[i].endswith(".") else "")
        out.append(" ".join(words))
    return out


QUESTIONS = ("What happened?", "Who was there?", "Where did it happen?", "When was it?", "Why did they go?")


def question_pairs(seed: int, n: int, lo: int = 20, hi: int = 80) -> list[tuple[str, str]]:
    """(question, context) pairs: a context of lo..hi words, seeded."""
    rng = random.Random(seed)
    return [(rng.choice(QUESTIONS), sentence(rng, rng.randint(lo, hi))) for _ in range(n)]


def prompts(seed: int, n: int, lo: int = 5, hi: int = 30) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(GENERATION_OPENERS)} {sentence(rng, rng.randint(lo, hi)).lower()}" for _ in range(n)]


def poisson_offsets(seed: int, n: int, rate: float) -> list[float]:
    """Arrival times (s from start) of a Poisson process at `rate`/s; the first at 0."""
    rng = random.Random(seed)
    t, out = 0.0, []
    for _ in range(n):
        out.append(t)
        t += rng.expovariate(rate)
    return out


def users(seed: int, n: int, pool: int) -> list[str]:
    rng = random.Random(seed)
    return [f"user{rng.randrange(pool)}" for _ in range(n)]


def pct(values: Sequence[float], q: float) -> float | None:
    """q-th percentile (0..100), linear interpolation between closest ranks."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)
