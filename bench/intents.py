"""A labelled intent set for the learned-labels benchmark: what members of a software community's
Discord write, under eight labels a moderator would use.

Messages are written from hand-made templates with varied slots (deterministic, seeded). Each
label's templates are split in two: messages from the `train` templates are the examples a
moderator tags; messages from the `test` templates are held out, so the score measures new
phrasings, not templates the head has already seen.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

SEED = 8

SLOTS: dict[str, list[str]] = {
    "feature": [
        "dark mode",
        "the export button",
        "notifications",
        "the mobile app",
        "login",
        "two-factor auth",
        "the search bar",
        "voice chat",
        "the leaderboard",
        "file uploads",
        "profile pictures",
        "the API",
        "the settings page",
        "push notifications",
        "the calendar sync",
        "the markdown preview",
        "the plugin manager",
        "offline mode",
    ],
    "platform": [
        "Android",
        "iOS",
        "Windows",
        "macOS",
        "Linux",
        "Chrome",
        "Firefox",
        "Safari",
        "the desktop app",
        "my iPad",
    ],
    "version": [
        "2.3",
        "2.4.1",
        "3.0 beta",
        "the latest update",
        "yesterday's update",
        "1.9",
        "v4",
        "the nightly build",
    ],
    "error": [
        "a white screen",
        "error 500",
        "a 'something went wrong' popup",
        "an infinite spinner",
        "a timeout error",
        "error code 0x80070005",
        "a null pointer exception",
        "'permission denied'",
        "a blank page",
        "a 403",
    ],
    "action": [
        "click save",
        "open settings",
        "upload a file",
        "log in",
        "switch tabs",
        "export to CSV",
        "rotate the phone",
        "paste an image",
        "join a voice channel",
        "change my avatar",
        "sync my calendar",
        "search for anything",
    ],
    "howto": [
        "change my username",
        "reset my password",
        "link my GitHub account",
        "export my data",
        "turn off the emails",
        "add a second admin",
        "get the beta role",
        "install plugins",
        "move my project to another team",
        "set up webhooks",
        "cancel my subscription",
        "enable two-factor auth",
        "get an API key",
        "self-host it",
    ],
    "offtopic": [
        "the game last night",
        "that new Marvel movie",
        "the weather this weekend",
        "pizza with pineapple",
        "the new Zelda",
        "my cat",
        "the World Cup",
        "coffee vs tea",
        "the concert on Saturday",
        "my vacation photos",
        "that meme",
        "the Formula 1 race",
        "my sourdough starter",
        "the best ramen in town",
    ],
    "scam": [
        "free Nitro",
        "a $100 Steam gift card",
        "free crypto",
        "an iPhone 15",
        "500 free followers",
        "a PS5",
        "double your Bitcoin",
        "free V-Bucks",
        "a Discord Nitro giveaway",
        "cheap Instagram likes",
    ],
    "link": [
        "bit.ly/fr33-g1ft",
        "discord-nitro.gift-claim.ru",
        "steamcommunity-gifts.xyz",
        "tinyurl.com/claimnow",
        "free-nitro.example",
        "airdrop-claim.io",
        "grabgift.site/x9",
    ],
    "insult": ["idiot", "moron", "clown", "loser", "pathetic", "braindead", "trash", "joke"],
    "person": ["you", "this guy", "that mod", "the dev", "whoever wrote this", "the admin"],
    "praise": [
        "the new update",
        "the redesign",
        "the onboarding",
        "the docs",
        "this community",
        "the mods",
        "the release notes",
        "the new dashboard",
        "support",
        "the changelog",
    ],
    "hobby": [
        "Python",
        "Rust",
        "game dev",
        "3D printing",
        "photography",
        "web design",
        "data science",
        "music production",
        "robotics",
        "UX design",
    ],
    "city": ["Berlin", "Lagos", "São Paulo", "Toronto", "Manila", "Kraków", "Melbourne", "Seoul", "Austin", "Lyon"],
    "wish": [
        "a dark theme",
        "keyboard shortcuts",
        "an export to PDF",
        "tags on projects",
        "bulk delete",
        "a Linux build",
        "recurring reminders",
        "custom emoji",
        "an undo button",
        "a public API",
        "SSO login",
        "read receipts",
    ],
    "time": [
        "since this morning",
        "after the update",
        "every time",
        "since yesterday",
        "randomly",
        "for a week now",
        "only on mobile",
        "twice today",
    ],
}

TEMPLATES: dict[str, dict[str, list[str]]] = {
    "question": {
        "train": [
            "How do I {howto}?",
            "Does anyone know how to {howto}?",
            "quick question: can I {howto} from the app?",
            "Is there a way to {howto} without contacting support?",
            "where do I go to {howto}",
            "Hi all, what's the best way to {howto}?",
            "can someone explain how {feature} works?",
            "Is {feature} available on {platform}?",
            "Sorry if this was asked before, but how can I {howto}?",
            "What's the difference between the free and pro plan for {feature}?",
            "Does {feature} work on {platform}?",
            "newbie here, how do you {howto}?",
            "Is it possible to {howto}? I couldn't find it in the docs",
            "Anyone know if {version} supports {feature}?",
            "Which settings do I need to {howto}?",
            "Can I use {feature} with a free account?",
            "How long does it take to {howto}?",
        ],
        "test": [
            "Could somebody point me to where I {howto}?",
            "what's the command to {howto}",
            "I'm confused about {feature}, how is it supposed to be used?",
            "Do I need admin rights to {howto}?",
            "hey, is there a guide for how to {howto}?",
            "Is {feature} coming to {platform} at some point?",
            "when I {howto}, does it affect my team?",
        ],
    },
    "bug report": {
        "train": [
            "The app crashes when I {action}",
            "Getting {error} every time I {action} on {platform}",
            "{feature} is broken {time}",
            "Bug: {feature} shows {error} on {platform}",
            "After {version} I can't {action} anymore, it just shows {error}",
            "Whenever I {action} the whole page freezes",
            "{feature} stopped working {time}, getting {error}",
            "Steps to reproduce: {action}, then wait. Expected: it saves. Actual: {error}",
            "Is anyone else getting {error} when they {action}? It's been like this {time}",
            "the {platform} version crashes on startup since {version}",
            "{feature} doesn't load, just {error}",
            "I think there's a bug with {feature}: it resets every time I {action}",
            "Can't {action} on {platform}, I get {error}",
            "{feature} is completely broken on {version}",
            "Something's wrong with {feature}, it duplicates everything when I {action}",
            "Reproducible on {platform}: {action} -> {error}",
            "Found a bug: {feature} ignores my settings {time}",
        ],
        "test": [
            "heads up devs, {feature} throws {error} on {platform}",
            "Since {version}, {feature} eats my changes when I {action}",
            "My screen goes black whenever I {action}",
            "{feature} keeps logging me out {time}",
            "There's a regression in {version}: {action} gives {error}",
            "Tried to {action} and got {error}, cleared cache, still the same",
            "Nothing happens when I {action} on {platform}, console shows {error}",
        ],
    },
    "feature request": {
        "train": [
            "It would be great to have {wish}",
            "Feature request: {wish} please!",
            "Could you add {wish}?",
            "Please consider adding {wish} to {feature}",
            "Any plans for {wish}?",
            "I'd love to see {wish} in the next release",
            "Suggestion: {feature} should support {wish}",
            "Would pay extra for {wish} tbh",
            "We really need {wish} for our team",
            "idea: what if {feature} had {wish}?",
            "+1 for {wish}, it's the one thing missing",
            "Can we get {wish} on {platform}?",
            "It'd be nice if {feature} let us use {wish}",
            "Wishlist item: {wish}",
            "Is {wish} on the roadmap? Really want it",
            "Proposal: add {wish} so we don't need workarounds",
            "Would love {wish}, the current way is tedious",
        ],
        "test": [
            "Dear devs, {wish} would make my life so much easier",
            "Pretty please with sugar on top: {wish}",
            "My only wish for {version}: {wish}",
            "The one thing I miss coming from other tools is {wish}",
            "Voting for {wish}, who else wants it?",
            "Could {feature} get {wish} someday?",
            "How about {wish} for power users?",
        ],
    },
    "spam": {
        "train": [
            "Get {scam} now at {link}",
            "FREE {scam}!!! Click {link} to claim",
            "Claim your {scam} before it expires: {link}",
            "@everyone {scam} giveaway, only today {link}",
            "I'm giving away {scam}, just log in at {link}",
            "Check out {link} for {scam} 100% legit",
            "You won {scam}! Redeem at {link}",
            "Steam is giving {scam} to the first 100 users {link}",
            "Hurry!! {scam} for everyone {link}",
            "Earn $500 a day from home, DM me",
            "{scam} generator working 2024 {link}",
            "Hey, my friend sent you {scam}, accept it here {link}",
            "Limited offer: {scam} at {link}",
            "Get rich quick, join my crypto group {link}",
            "free {scam} no survey {link}",
            "Discord is giving away {scam}: {link}",
            "Buy {scam} cheap, DM me for prices",
        ],
        "test": [
            "yo bro check this {scam} {link}",
            "Airdrop alert! Connect your wallet at {link} for {scam}",
            "Your account will be banned unless you verify at {link}",
            "Congrats, you've been selected for {scam} -> {link}",
            "Make money fast with this one trick {link}",
            "🎁 {scam} 🎁 {link} 🎁",
            "Last chance: {scam} at {link}, only 3 left",
        ],
    },
    "off-topic": {
        "train": [
            "Anyone watching {offtopic}?",
            "What do you all think about {offtopic}?",
            "Did you see {offtopic}? Crazy",
            "Totally unrelated but {offtopic} was amazing",
            "lol {offtopic} is all I can think about today",
            "Random thought: {offtopic} is overrated",
            "Who else is excited for {offtopic}?",
            "Can't stop talking about {offtopic} with my friends",
            "{offtopic} discussion anyone?",
            "Off topic, but has anyone been to {city}?",
            "Going to {city} next month, any tips?",
            "Happy Friday everyone! Plans for the weekend?",
            "What's everyone having for lunch?",
            "Just got back from {city}, what a trip",
            "Rate {offtopic} from 1 to 10",
            "Hot take: {offtopic} is the best thing this year",
            "Anyone else procrastinating with {offtopic}?",
        ],
        "test": [
            "ok but can we talk about {offtopic} for a sec",
            "The weather in {city} is wild today",
            "unpopular opinion: {offtopic} > everything",
            "brb, {offtopic} is on",
            "Sending good vibes from {city} ☀️",
            "My weekend was all about {offtopic}",
            "Does anyone here follow {offtopic}?",
        ],
    },
    "feedback": {
        "train": [
            "Loving {praise}, great job team!",
            "Just wanted to say {praise} is fantastic",
            "{praise} is so much better now, thanks",
            "Honestly {praise} feels confusing, not a fan",
            "Not happy with {praise}, it got worse",
            "Big thanks to the devs for {praise}",
            "{praise} made my week, well done",
            "Kudos on {praise}, super smooth",
            "I miss the old version, {praise} is a step back",
            "Mixed feelings about {praise}: faster, but harder to find things",
            "10/10 for {praise}",
            "{praise} is really polished, you can tell you listened to us",
            "Thanks for {praise}, it's exactly what I needed",
            "Meh, {praise} isn't for me",
            "Props to whoever designed {praise}",
            "Appreciate all the work on {praise} 🙏",
            "{praise} is a huge improvement over last month",
        ],
        "test": [
            "You folks nailed {praise}",
            "Gotta say, {praise} disappointed me a bit",
            "Shoutout to the team, {praise} is clean",
            "Feedback on {praise}: love the speed, hate the colours",
            "I've used this for years and {praise} is the best change yet",
            "Can't believe how good {praise} turned out",
            "{praise} feels rushed honestly",
        ],
    },
    "harassment": {
        "train": [
            "{person} is a complete {insult}",
            "shut up {insult}",
            "nobody wants you here, {insult}",
            "you're such a {insult}, just leave",
            "lmao what a {insult}",
            "{person} should uninstall life, {insult}",
            "Go away {insult}, no one asked",
            "Imagine being this much of a {insult}",
            "ur a {insult} and everyone knows it",
            "{person} is too stupid to understand anything",
            "Keep crying {insult}",
            "Get lost, {insult}",
            "Who let this {insult} in here?",
            "Typical {insult} behaviour from {person}",
            "I hope {person} gets banned, absolute {insult}",
            "stop talking {insult}",
            "{person}? more like {insult}",
        ],
        "test": [
            "honestly {person} is the dumbest {insult} on this server",
            "log off forever, {insult}",
            "everyone is laughing at you, {insult}",
            "what a useless {insult} {person} is",
            "nobody cares about your opinion, {insult}",
            "cry more {insult}",
            "{person} is a {insult}, block him",
        ],
    },
    "introduction": {
        "train": [
            "Hi everyone, I'm new here! I work on {hobby}",
            "Hello from {city}! Just joined",
            "Hey all, excited to be part of this community",
            "New member here, I'm into {hobby} and {hobby2}",
            "Hi! Found this server through a friend, glad to be here",
            "Greetings from {city} 👋",
            "Hey, I'm Sam, been using the app for a week",
            "Just joined, hi! I do {hobby} for a living",
            "Hello everyone, long time lurker, first post",
            "Hi folks, {hobby} dev from {city} here",
            "Hey there! New to the server, looking forward to learning",
            "Hi, I'm Priya, nice to meet you all",
            "What's up everyone, just arrived from {city}",
            "Hello hello! Student learning {hobby}",
            "Hi team, just signed up, say hi 🙂",
            "Hey! I'm a hobbyist into {hobby}, happy to join",
            "Morning all, new here and into {hobby}",
            "Hi, I'm from {city} and I'm into {hobby}",
            "Hey all! {hobby} and {hobby2} enthusiast here, just joined",
        ],
        "test": [
            "Yo, first message here, I'm into {hobby}",
            "Hi all! Moved to {city} recently and found this place",
            "Hello, glad I found this community, I'm a {hobby} teacher",
            "Hey folks 👋 just joined from {city}",
            "Hi, new face here, I mostly do {hobby}",
            "Good evening everyone, happy to be here",
            "Hey hey, joined today, {hobby} nerd",
        ],
    },
}

# Zero-shot's side of the comparison: each label described by a typical message, as the README advises.
DESCRIPTIONS: dict[str, str] = {
    "question": "How do I change my settings? Can someone help?",
    "bug report": "The app crashes with an error when I click save",
    "feature request": "Please add a new feature, it would be great to have it",
    "spam": "Free nitro! Click this link to claim your prize",
    "off-topic": "Anyone watching the game tonight?",
    "feedback": "I love the new update, great job team",
    "harassment": "You are an idiot, shut up and leave",
    "introduction": "Hi everyone, I'm new here, nice to meet you",
}


@dataclass(frozen=True)
class Message:
    text: str
    label: str
    split: str  # "train" (templates a moderator has tagged) or "test" (held-out templates)


def _casual(text: str, rng: random.Random) -> str:
    """Chat style: some messages lower-cased, some without the final punctuation."""
    if rng.random() < 0.25:
        text = text.lower()
    if rng.random() < 0.3:
        text = text.rstrip(".!?")
    return text


def _fill(template: str, rng: random.Random) -> str:
    slots: dict[str, str] = {}

    def pick(match: re.Match[str]) -> str:
        name = match.group(1)
        base = name.rstrip("0123456789")
        choices = [c for c in SLOTS[base] if c not in slots.values()]
        slots[name] = rng.choice(choices)
        return slots[name]

    return re.sub(r"\{(\w+)\}", pick, template)


def messages(per_template: int = 15) -> list[Message]:
    """Up to `per_template` distinct messages from each template, deterministic."""
    rng = random.Random(SEED)
    out: list[Message] = []
    for label, splits in TEMPLATES.items():
        for split, templates in splits.items():
            for template in templates:
                seen: set[str] = set()
                for _ in range(per_template * 4):
                    text = _casual(_fill(template, rng), rng)
                    if text.lower() not in seen:
                        seen.add(text.lower())
                        out.append(Message(text, label, split))
                    if len(seen) == per_template:
                        break
    return out
