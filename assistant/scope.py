"""Scope: what the assistant declines to answer, after triage has found no red flag.

Prompt injection, medicines and doses, other body parts and conditions, unrelated tasks.
(Questions the knowledge base simply does not cover are caught later, by the composer's abstention.)
`text` is the message as `assistant.language` normalises it (lower case, one spelling of each
contraction, tokens separated by spaces).
"""

from __future__ import annotations

import re

_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\b[^.?!]{0,40}\b(?:instructions?|rules|prompts?|guidelines|previous|above|system|restrictions)"
    r"|\b(?:system|hidden|initial|original) prompt|\bprompt injection|\bjailbreak|\bdeveloper mode|\bdan mode"
    r"|\b(?:reveal|show|print|repeat|tell me|output|leak|what (?:is|are)) (?:me )?(?:your|the) (?:system |hidden |initial |secret )?(?:prompt|instructions|rules|configuration)"
    r"|\byou are (?:now|no longer)\b|\bpretend (?:to be|you are)|\bact as (?:a|an|my)\b|\broleplay as|\bfrom now on you"
)
_MEDICINES = (
    r"ibuprofen|naproxen|paracetamol|acetaminophen|aspirin|diclofenac|codeine|tramadol|morphine|oxycodone|nsaids?|painkillers?"
    r"|pain ?killers?|pain relief (?:tablets|pills|medication)|anti[- ]?inflammator(?:y|ies)|steroids?|cortisone|prednisolone|voltaren|advil"
    r"|tylenol|aleve|nurofen|motrin|celecoxib|opioids?|gabapentin|pregabalin|medications?|(?:take|taking|took|any|which|what) medicines?"
    r"|medicines? for|tablets?|pills?|drugs?|injections?"
    r"|supplements?|glucosamine|turmeric|collagen|cbd|creatine"
)
_MEDICATION = re.compile(r"\b(?:" + _MEDICINES + r")\b")
_DOSE = re.compile(r"\b(?:dose|doses|dosage|how (?:much|many)|mg|milligrams?|ml|max(?:imum)?|per day|a day|twice|times a day|take|prescribe)\b")
_OTHER_PARTS = re.compile(
    r"\b(?:shoulders?|elbows?|wrists?|fingers?|thumbs?|neck|back pain|lower back|upper back|spine|spinal|sciatica|ankles?|heels?|achilles"
    r"|plantar|fasciitis|toes? (?:pain|hurts?)|shin splints|hamstring strain|groin strain|headaches?|migraines?|teeth|tooth|stomach"
    r"|skin|rash|acne|jaw|ribs?|tennis elbow|carpal tunnel|bunions?)\b"
)
_OTHER_CONDITIONS = re.compile(
    r"\b(?:diabetes|asthma|covid|coronavirus|flu jab|vaccines?|pregnan\w*|depression|anxiety|blood pressure|cholesterol|gout"
    r"|rheumatoid|lupus|psoriasis|osteoporosis|hay fever|allerg\w*|cold sores?|insomnia|weight loss diet|keto|vegan diet|thyroid)\b"
)
# Other knee conditions and operations the knowledge base does not cover: refused even though
# they mention the knee (a composer answer would stitch runner's-knee passages onto them).
_OTHER_KNEE_CARE = re.compile(
    r"\b(?:acl|anterior cruciate)(?: ligament)? (?:reconstruction|surgery|repair|graft|rehab\w*)"
    r"|\b(?:total |partial )?knee replacements?\b|\barthroplasty\b|\bmeniscectomy\b|\bmenisc\w* (?:repair|surgery)"
)
_KNEE_TOPIC = re.compile(
    r"\b(?:knees?|kneecaps?|knee ?caps?|patell\w*|pfp|pfps|runner'?s knee|quads?|quadriceps|glutes?|patellofemoral|run|runs|running|runner|runners"
    r"|jog\w*|cadence|stride|squats?|lunges?|step[- ]ups?|calf raises?|orthotics?|insoles?|orthoses|taping|tape|brace|foam roll\w*|marathon|parkrun|hip)\b"
)
_UNRELATED_TASK = re.compile(
    r"\b(?:write|compose) (?:me )?(?:a|an) (?:poem|story|essay|song|haiku|joke|email|letter|code|program|script)\b|\btranslate\b"
    r"|\brecipes?\b|\bweather\b|\bstock (?:price|market)\b|\bbitcoin\b|\bcapital of\b|\bwho won\b|\bfootball scores?\b|\bpython code\b"
    r"|\bjavascript\b|\bsql\b|\bhomework\b|\bmovie recommendations?\b|\blottery\b|\bhoroscope\b|\bcrypto\b"
)

SCOPE_HELP = (
    "I can help with runner's knee (pain around or behind the kneecap): what it is and why it happens, "
    "exercises and strength work, running with it and getting back to running, technique, insoles, taping "
    "and braces, prevention, how long it lasts, and when to see a doctor."
)
REFUSALS = {
    "injection": "I can't change how I work or share my instructions. " + SCOPE_HELP,
    "medication": (
        "I can't advise on medicines, supplements or doses. A pharmacist or your doctor can tell you which pain "
        "relief is safe for you and how to take it. " + SCOPE_HELP
    ),
    "out_of_scope": (
        "That is outside what I can help with: my knowledge base covers only runner's knee. For other problems, "
        "please ask a doctor, physiotherapist or pharmacist. " + SCOPE_HELP
    ),
    "unrelated": "That is outside what I can help with. " + SCOPE_HELP,
}


def scope_refusal(text: str) -> str | None:
    """Which refusal (if any) a message needs; `text` is normalised."""
    if _INJECTION.search(text):
        return "injection"
    if _MEDICATION.search(text):
        return "medication"
    if _UNRELATED_TASK.search(text):
        return "unrelated"
    if (_OTHER_PARTS.search(text) or _OTHER_CONDITIONS.search(text)) and not _KNEE_TOPIC.search(text):
        return "out_of_scope"
    if _OTHER_KNEE_CARE.search(text):
        return "out_of_scope"
    return None


