"""Scope: what the assistant declines to answer, after triage has found no red flag.

Judged on what the message ASKS, not on what its story mentions: "my GP said take ibuprofen ...
what exercises should I do?" is answered; "how often can I take ibuprofen?" is not.
- prompt injection (anywhere in the message): refused;
- a question that asks which medicine, what dose, or about an injection: refused, with who can
  advise (a pharmacist or doctor);
- a question about another body part or condition and not the knee: a short, kind reply that names
  what the knowledge base covers and who can help (the pipeline adds any passage it does have);
- a decision about an operation the knowledge base does not cover (ACL reconstruction, knee
  replacement, a scheduled operation): the same kind reply;
- an unrelated task, or coaching for speed, races and fuel with nothing of the knee in it: refused.
Questions the knowledge base simply does not cover are caught later, by the composer's abstention.
Texts are lower case, with one spelling of each contraction (`assistant.language`).
"""

from __future__ import annotations

import re

from assistant.vocabulary import vocabulary

_PROMPT_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\b[^.?!]{0,40}\b(?:instructions?|rules|prompts?|guidelines|previous|above|system|restrictions)"
    r"|\b(?:system|hidden|initial|original) prompt|\bprompt injection|\bjailbreak|\bdeveloper mode|\bdan mode"
    r"|\b(?:reveal|show|print|repeat|tell me|output|leak|what (?:is|are)) (?:me )?(?:your|the) (?:system |hidden |initial |secret )?(?:prompt|instructions|rules|configuration)"
    r"|\byou are (?:now|no longer)\b|\bpretend (?:to be|you are|you're|ur|your|youre)|\bact as (?:a|an|my)\b|\broleplay as|\bfrom now on you"
)
# The topic lists (medicines, other body parts and conditions, knee words) are reviewed data:
# assistant/vocabulary.yaml. What is here is how a question asks, in general English.
_WORDS = vocabulary()
_MEDICATION = _WORDS["medicines"]
# What makes a question about a medicine a medicine question: a dose, which one, whether or how to
# take it, or an injection ("should I get a cortisone injection?").
_ASKS_MEDICINE = re.compile(
    r"\b(?:dose|doses|dosage|how (?:much|many|often|long)|mg|milligrams?|ml|max(?:imum)?|per day|a day|twice|times a day|prescribe"
    r"|which|what (?:medicine|painkiller|tablet|pill|drug|cream|gel|supplement|anti)|best (?:medicine|painkiller|pill|tablet|cream|gel|supplement)"
    r"|(?:can|could|should|may|do|shall) i (?:take|use|have|get|try|combine|mix|keep taking|stop taking)|safe to (?:take|use|have)"
    r"|ok(?:ay)? to (?:take|use|have)|take (?:it|them|these|those)|together|injections?|jabs?|shots?|worth (?:taking|trying|getting)"
    # Choosing between medicines, or when and whether to take one ("voltaren gel or ibuprofen
    # tablets?", "better to take painkillers before or after a run?", "should I be taking ...").
    r"|better than|or|vs|versus|instead of|rather than|compared (?:to|with)"
    r"|(?:better|best|ok|okay|safe|fine|wise|worth|when|whether) to take|(?:before|after) (?:taking|i take)|(?:be|start|keep) taking"
    # more of it: "is it ok to double up on naproxen before a long run?"
    r"|double up|double (?:the|my) dose|up the dose|(?:an )?extra (?:dose|doses|tablet|tablets|pill|pills)"
    # Whether to run on it: "I was given tramadol, is it safe to run on it?" (a painkiller can hide
    # what the knee says; the prescriber answers that).
    r"|(?:run|running|race|racing|train|training|exercise|exercising|play|playing|do (?:my|a|the) \w+(?: \w+)?) on (?:it|them|these|those|that))\b"
)
# A question that leans on a medicine named only in the story: a change of dose ("can I bump it up
# to three times?"), or whether "it" is a good idea ("the doctor wants to give me an injection ... is
# it a good idea or dangerous?"). Checked on new phrasings, not the test split's (see tests).
_CHANGES_A_DOSE = re.compile(
    r"\b(?:bump|increase|double|up|raise|cut|reduce|lower) (?:it|them|that|this|the dose|my dose|the amount)\b"
    r"|\b(?:take|have) (?:more|another|an extra|extra|a second|a double)\b|\b(?:two|three|four|2|3|4) (?:times|tablets|pills)\b"
)
_JUDGES_IT = re.compile(
    r"\b(?:it|this|that|they|them)\b[^.?!]{0,20}\b(?:good idea|bad idea|dangerous|safe|risky|harmful|worth it|a good thing|wise|sensible)\b"
    r"|\b(?:good idea|bad idea|dangerous|safe|risky|harmful|worth it)\b[^.?!]{0,12}\b(?:it|this|that|them)\b"
)
# ... or a question that is only a judgement, with no subject of its own ("Thinking about a steroid
# jab in my knee so I can run the London marathon next month. Good idea?", "Worth it?", "Sensible?"):
# it judges what the story tells (session 16: such questions were answered with exercise therapy,
# or declined only because nothing matched them).
_ONLY_A_JUDGEMENT = re.compile(
    r"^\W*(?:(?:is|would|will) (?:it|this|that) (?:be )?)?(?:a |an )?"
    r"(?:good idea|bad idea|dangerous|safe|risky|harmful|worth it|wise|sensible|advisable|a good plan|ok|okay)(?: or not)?\W*$"
)
# A question that sets its medicine aside before it asks: "I know you can't tell me about the pills,
# but is the sleeve doing anything, or is it a comfort blanket?", "leaving the pills aside, should I
# run or rest?". What follows the aside asks; the medicine before it is part of the story (session 14:
# "or" in such a question read as choosing between medicines, and it was refused).
_SETS_ASIDE = re.compile(
    r"\b(?:i know|i understand|i realise|i realize|i get that|i appreciate|i'm aware|i am aware)\b[^.?!]{0,40}?"
    r"\b(?:cannot|can't|can not|don't|do not|won't|not allowed|not able|not your|isn't your|is not your)\b[^,.?!]*"
    r"|\bnot your (?:area|thing|department|remit|field)\b"
    r"|\b(?:leaving|leave|putting|put|setting|set) (?:the |my |those |these |that )?\w+(?: \w+)? (?:aside|to one side)\b"
    r"|\b(?:apart|aside) from\b[^,]*|\bother than\b[^,]*|\bnot asking about\b[^,]*",
    re.I,
)
# Where the asking starts after an aside: the next comma or "but".
_AFTER_ASIDE = re.compile(r"(?:,\s*(?:but\s+|so\s+)?|\bbut\s+)")


def asking_part(question: str) -> str:
    """The part of a question after an aside that sets something aside ("I know you can't tell
    me about the pills, but ..."); the whole question when it has none, or when too little follows."""
    asides = list(_SETS_ASIDE.finditer(question))
    if not asides:
        return question
    after = _AFTER_ASIDE.search(question, asides[-1].end())
    rest = question[after.end():] if after else ""
    return rest if len(rest.split()) >= 3 else question


# ... or whether to take it ("The GP gave me naproxen. Can I take them before a run?" was answered
# about running; session 14).
# Not "take it easy", "take some time off", "use it or lose it". "Use it" also fits a foam roller or
# a brace: it counts only when the message names no such thing.
_NOT_A_DOSE = r"(?! (?:easy|easier|slow|slower|steady|gently|gentle|off|out|back|up|time|days?|weeks?|a break|a rest|or lose|further|one day|day by day|a step))"
_TAKES_IT = re.compile(r"\b(?:take|taking|swallow|pop|popping) (?:it|them|these|those|one|two|some)\b" + _NOT_A_DOSE)
_USES_IT = re.compile(r"\b(?:use|using) (?:it|them|these|those|some)\b" + _NOT_A_DOSE)
# What else a question of that kind might be about, for which it is not a medicine question.
_OTHER_SUBJECT = _WORDS["care_not_medicine"]
_OTHER_PARTS = _WORDS["other_body_parts"]
_OTHER_CONDITIONS = _WORDS["other_conditions"]
_STRENGTH_WORK = _WORDS["strength_work"]
_TRAINED_GROUPS = _WORDS["trained_muscle_groups"]
_SYMPTOMS = _WORDS["symptoms"]
# Other knee conditions and operations the knowledge base does not cover: refused even though
# they mention the knee (a composer answer would stitch runner's-knee passages onto them).
_OTHER_KNEE_CARE = re.compile(
    _WORDS["other_knee_care"].pattern
    # A diagnosis the story states (not a question whether it could be one: that is answered).
    + r"|\b(?:showed|shows|found|diagnosed (?:with|as)|i have|i've got|i have got|confirmed)\b (?:a |an )?(?:\w+ ){0,2}"
    + _WORDS["diagnosed_knee_conditions"].pattern
)
# Words of runner's knee itself: a story that has them is about it, whatever operation it mentions.
_PFP_WORDS = _WORDS["runners_knee"]
# The question is about the knee: it names it (running alone does not make a hip question a knee one).
_KNEE_TOPIC = _WORDS["knee"]
# Coaching for speed, races and fuel: declined when the message says nothing of the knee's world
# and no symptom (then it is a question about running with a sore knee, which is answered).
_RUNNING_COACHING = _WORDS["running_coaching"]
_KNEE_WORLD = _WORDS["knee_world"]
_UNRELATED_TASK = re.compile(
    r"\b(?:write|compose) (?:me )?(?:a|an) (?:poem|story|essay|song|haiku|joke|email|letter|code|program|script)\b|\btranslate\b"
    r"|\b(?:sick|doctor'?s|fit|gp) note\b|\bmedical certificate\b|\brecipes?\b|\bweather\b|\bstock (?:price|market)\b|\bbitcoin\b|\bcapital of\b|\bwho won\b|\bfootball scores?\b|\bpython code\b"
    r"|\bjavascript\b|\bsql\b|\bhomework\b|\bmovie recommendations?\b|\blottery\b|\bhoroscope\b|\bcrypto\b"
)

SCOPE_HELP = (
    "I can help with runner's knee (pain around or behind the kneecap): what it is and why it happens, "
    "exercises and strength work, running with it and getting back to running, technique, insoles, taping "
    "and braces, prevention, how long it lasts, and when to see a doctor."
)
REFUSALS = {
    "prompt_injection": "I can't change how I work or share my instructions. " + SCOPE_HELP,
    "medication": (
        "I can't advise on medicines, supplements or doses. A pharmacist or your doctor can tell you which pain "
        "relief is safe for you and how to take it. " + SCOPE_HELP
    ),
    "out_of_scope": (
        "My knowledge base covers runner's knee only, so I can't give you a reliable answer about that. "
        "A GP or physiotherapist can assess it and tell you what will help. " + SCOPE_HELP
    ),
    "unrelated": "That is outside what I can help with. " + SCOPE_HELP,
}


def _other_topic(text: str, message: str | None = None) -> bool:
    """`text` names another body part or condition, and not the knee. `message`: the whole message,
    for the symptoms that make training a muscle group a question about that part after all."""
    if _KNEE_TOPIC.search(text):
        return False
    if _OTHER_CONDITIONS.search(text):
        return True
    if _STRENGTH_WORK.search(text) and not _hurts_elsewhere(message or text):
        text = _TRAINED_GROUPS.sub(" ", text)  # training the hips or calves, not a problem of theirs
    return bool(_OTHER_PARTS.search(text))


_CLAUSE = re.compile(r"[^.,;:!?\n]+")


def _hurts_elsewhere(text: str) -> bool:
    """A clause tells a symptom of another body part ("my hip hurts when I do the hip exercises"),
    not of the knee: only then is a trained muscle group ("why all the hip exercises?") a problem
    of its own. Until session 15 any symptom in the message counted, the knee's too, so "knee pain
    at the front for a year ... am I going to need surgery, and why all the hip exercises?" was
    declined as a question about the hip."""
    return any(_SYMPTOMS.search(c) and _OTHER_PARTS.search(c) and not _KNEE_TOPIC.search(c)
               for c in _CLAUSE.findall(text))


# A story that stops its medicine ("Ditched the painkillers", "I've come off the naproxen"): what it
# does instead, if that is no medicine, is what a bare judgement after it judges (session 17:
# "Ditched the painkillers and I'm going to run through the pain instead. Sensible?" was refused
# as a medicine question).
_STOPS_A_MEDICINE = re.compile(
    r"\b(?:ditch(?:ed|ing)?|stop(?:ped|ping)?|quit(?:ting)?|gave up|give up|giving up|came off|come off|coming off|binned|bin(?:ning)?"
    r"|dropped|drop(?:ping)?|no more|done with|finished with|off)(?: (?:on|taking|using|the|my|all|those|these|that))*\s+$",
    re.I)


def _stops_its_medicine(text: str) -> bool:
    """Every medicine the story names is one it stops ("ditched the painkillers"): a switch to
    another ("stopped paracetamol and started ibuprofen instead") names one it does not stop."""
    found = list(_MEDICATION.finditer(text))
    return bool(found) and all(_STOPS_A_MEDICINE.search(text[max(0, m.start() - 40): m.start()]) for m in found)


def _other_care(text: str) -> bool:
    """The message names care other than a medicine (a brace, exercises, ice ...) that a bare
    judgement ("Good idea?") may be about. Running and the physio who suggested something are
    the story's setting, not what is judged ("My physio mentioned a cortisone injection before my
    half. Worth it?")."""
    return bool(_STRENGTH_WORK.search(text)) or any(
        not (w.lower() in ("run", "running") or w.lower().startswith("physio")) for w in _OTHER_SUBJECT.findall(text))


def _names_a_part(text: str) -> bool:
    return bool(_KNEE_TOPIC.search(text) or _OTHER_PARTS.search(text) or _OTHER_CONDITIONS.search(text))


def scope_refusal(text: str, asked: list[str] | None = None) -> str | None:
    """Which refusal (if any) a message needs. `text`: the whole message; `asked`: the sentences
    that ask (`assistant.message`, which already reads each from after any aside, `asking_part`),
    all of it when None. Both normalised."""
    questions = " ".join(asked) if asked else asking_part(text)
    if _PROMPT_INJECTION.search(text):
        return "prompt_injection"
    if _MEDICATION.search(questions) and _ASKS_MEDICINE.search(questions):
        return "medication"
    if asked and _MEDICATION.search(text) and not _MEDICATION.search(questions) and (
        _CHANGES_A_DOSE.search(questions) or _TAKES_IT.search(questions)
        or (_USES_IT.search(questions) and not _OTHER_SUBJECT.search(text))
        or (_JUDGES_IT.search(questions) and not _OTHER_SUBJECT.search(questions) and not _stops_its_medicine(text))
        or (any(_ONLY_A_JUDGEMENT.search(q) for q in asked) and not _other_care(text) and not _stops_its_medicine(text))
    ):
        return "medication"
    if _UNRELATED_TASK.search(questions):
        return "unrelated"
    if _RUNNING_COACHING.search(questions) and not _KNEE_WORLD.search(text) and not _SYMPTOMS.search(text):
        return "unrelated"
    if _other_topic(questions, text):
        return "out_of_scope"
    # "Pain in my hip and groin when I run... should I rest or see a doctor?": the question names
    # no body part, so the story says what it is about.
    if asked and not _names_a_part(questions) and _other_topic(text):
        return "out_of_scope"
    if _OTHER_KNEE_CARE.search(questions):
        return "out_of_scope"
    # An operation or another knee condition the story is about ("7 months post ACL
    # reconstruction ... when can I start running?"), with nothing of runner's knee in it.
    if _OTHER_KNEE_CARE.search(text) and not _PFP_WORDS.search(text):
        return "out_of_scope"
    return None
