"""Safety triage: runs on every message, before retrieval.

1. Red flags -> an `Escalation` (emergency or urgent). Rules over a lexicon of symptom concepts
   (typo-tolerant, negation-aware), plus semantic matching of each clause against example
   phrasings. Everything a rule needs is in the one table `RED_FLAGS`, each rule with its source.
2. Out of scope -> a refusal: prompt injection, medication and doses, other body parts and
   conditions, unrelated tasks. (Questions the knowledge base simply does not cover are caught
   later, by the composer's abstention.)

Levels come from ../shared/knowledge/factsheet.md section 9 and factsheet-research.md section 6.
Where sources disagree, the higher level is used (both files and DEVELOPERS.md say so): clinician
pathways [S31][S32] send trauma with inability to bear weight, a locked knee after trauma, marked
swelling after trauma and a hot swollen joint with fever to the emergency department, so those are
`emergency` here although public pages say "urgent GP".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from knee.models import Escalation

EMERGENCY_ACTION = (
    "Call your emergency number now (999 in the UK, 112 in Europe, 911 in the US) "
    "or go to the nearest emergency department."
)
URGENT_ACTION = (
    "See a doctor today: contact your GP for an urgent same-day appointment, call NHS 111 "
    "(or your local urgent care line), or go to an urgent care centre."
)
CRISIS_ACTION = (
    "Please get help now: call your emergency number (999 in the UK, 112 in Europe, 911 in the US) "
    "or go to the emergency department. You can also call a crisis line at any time, day or night: "
    "Samaritans on 116 123 in the UK and Ireland, or 988 in the US."
)


# --------------------------------------------------------------------------- concepts
# Each concept is a regular expression over the normalised message (lower case, straight quotes,
# "cant" -> "can't", common typos corrected). Concepts name symptoms and context; rules combine them.

_NEG_ABLE = r"(?:can't|cannot|can not|unable to|not able to|couldn't|could not|impossible to|won't)"
_KNEEISH = r"(?:knee|kneecap|knee ?cap|patella|leg|joint)"

CONCEPTS: dict[str, str] = {
    "calf": r"\b(?:calf|calves|lower leg|back of (?:my |the |his |her )?(?:leg|shin))\b",
    "calf_symptom": (
        r"\b(?:calf|calves|lower leg)\b[^.;!?]{0,40}?\b(?:swell\w*|swollen|puff\w*|pain\w*|hurt\w*|ach\w*|sore|tender|warm|hot|red|throb\w*|tight)"
        r"|\b(?:swollen|swelling|puffy|painful|sore|tender|warm|hot|red|throbbing|aching)\b[^.;!?]{0,25}?\b(?:calf|calves|lower leg)\b"
    ),
    "calf_dvt": (
        r"\b(?:calf|calves|lower leg)\b[^.;!?]{0,40}?\b(?:swell\w*|swollen|puff\w*|warm|hot|red|redness)\b"
        r"|\b(?:swollen|swelling|puffy|warm|hot|red)\b[^.;!?]{0,25}?\b(?:calf|calves|lower leg)\b"
        r"|\b(?:blood clot|dvt|deep vein thrombosis)\b"
    ),
    "breathless": (
        r"short(?:ness)? of breath|breathless|out of breath|can't (?:catch (?:my|his|her) |get (?:my|his|her) )?breath\w*"
        r"|(?:struggl\w*|fighting|hard|difficult\w*|trouble|problems?) (?:to |with |in )?breath\w*|gasp\w*|wheez\w*"
        r"|breathing (?:is |feels )?(?:hard|difficult|laboured|labored|fast|heavy)"
    ),
    "severe_breath": (
        r"(?:severe(?:ly)?|really|very|extremely|sudden(?:ly)?|badly|so) (?:short of breath|breathless|out of breath)"
        r"|can't breathe|struggl\w* to breathe|gasping for (?:air|breath)|couldn't breathe"
    ),
    "chest_pain": (
        r"\bchest\b[^.;!?]{0,20}?\b(?:pain\w*|hurt\w*|tight\w*|pressure|discomfort|ach\w*|sore|heav\w*|crushing|squeez\w*|funny|strange|weird|odd|wrong)"
        r"|\b(?:pain\w*|tight\w*|pressure|discomfort|ach\w*|crushing|squeez\w*|heavy|heaviness)\b[^.;!?]{0,25}?\bchest\b|heart attack|angina"
    ),
    "faint": (
        r"\bfaint(?:ed|ing)?\b|passed out|pass out|passing out|blacked out|black out|lost consciousness"
        r"|keeled over|collapsed (?:while|during|when|on|at the end of|after) (?:a |my |the )?(?:run|running|race|training|exercise|parkrun|jog)"
        r"|\b(?:i|he|she) (?:just |suddenly )?collapsed\b|woke up on the (?:ground|floor|track|road|pavement)"
    ),
    "exercise": (
        r"\b(?:run|runs|running|ran|jog\w*|exercis\w*|training|workout|race|racing|parkrun|marathon|sprint\w*|interval\w*"
        r"|playing|football|soccer|netball|rugby|basketball|skiing|tennis|squash|hockey|volleyball|match|game)\b"
    ),
    "suicide": (
        r"suicid\w*|kill(?:ing)? myself|end(?:ing)? (?:my|it) (?:life|all)|end it all|take my (?:own )?life"
        r"|(?:want(?:ing|ed|s)?|urges?|thoughts? of|think(?:ing)? (?:of|about)|tempted|going|feel(?:ing)? like|plan(?:ning)?) (?:to )?hurt(?:ing)? myself"
        r"|want(?:ed)? to die|wish i (?:was|were) dead|better off dead|self[- ]?harm\w*|harm(?:ing)? myself|cut(?:ting)? myself"
        r"|no (?:reason|point) (?:to|in) (?:live|living|going on)|don't want to (?:live|be alive|be here|exist|wake up|go on)|wish i (?:could )?(?:die|didn't wake up|wasn't here|wasn't alive)"
        r"|(?:better|happier) off without me|(?:be|are) better without me|can't go on|can't take (?:it|this) any ?more"
        r"|(?:want|wish) (?:to|i could) disappear|no way out|not worth living|give up on life"
        r"|(?:want(?:ing)?|thinking (?:of|about)|feel(?:ing)? like|going to|plan(?:ning)? to) end(?:ing)? (?:it|things|everything|my life)\b"
        r"|better off (?:if i (?:was|were|am|wasn't|weren't) (?:gone|dead|not here|here)|without me)|(?:if|when) i(?:'m| am| was) gone\b"
    ),
    "deformed": (
        r"deform\w*|dislocat\w*|out of (?:place|joint|position|its socket)|misshapen|disfigured"
        r"|(?:looks?|looking|looked) (?:wrong|weird|odd|bent|twisted|crooked|out of shape|strange|funny)"
        r"|wrong shape|(?:wrong|weird|strange|odd) place|(?:kneecap|knee ?cap|patella) (?:has |is |was )?(?:moved|shifted|slipped|slid|popped|pushed|sitting|went|came|jumped) (?:out|to the side|sideways|off)"
        r"|popped out|(?:weird|strange|odd|funny|unnatural|wrong) angle|bone (?:is )?sticking out|sticking out (?:at|in) a"
    ),
    "foot_cold_pale": (
        r"\b(?:foot|feet|toes?)\b[^.;!?]{0,30}?\b(?:cold|pale|white|blue|grey|gray|purple|mottled|no pulse)\b"
        r"|\b(?:cold|pale|white|blue|grey|purple|mottled)\b[^.;!?]{0,15}?\b(?:foot|feet|toes?)\b|no pulse"
        r"|\b(?:leg|shin)\b[^.;!?]{0,20}?\b(?:went|turned|gone|is|looks?) (?:cold and )?(?:pale|white|blue|purple|mottled|grey)\b"
    ),
    "foot_numb": (
        r"\b(?:foot|feet|toes?)\b[^.;!?]{0,30}?\b(?:numb\w*|tingl\w*|pins and needles|no feeling|dead)\b"
        r"|\b(?:numb\w*|tingl\w*|pins and needles)\b[^.;!?]{0,20}?\b(?:foot|feet|toes?|below the knee|down my leg)\b"
        r"|can't feel (?:my |the |his |her )?(?:foot|feet|toes?|leg)|\b(?:leg|foot) (?:feels|felt|is|went|has gone|gone) (?:dead|numb)"
    ),
    "injury": (
        r"\b(?:injur\w*|fell|fall|falling|fallen|tripped|trip over|slipped|slip|twist(?:ed|ing)?|tackl\w*|collid\w*|collision"
        r"|crash\w*|accident|hit|landed (?:awkwardly|badly|wrong|funny|on)|banged|knocked|blow to|kicked|sprain\w*"
        r"|wiped out|came off|went over|impact|hyperextend\w*|smashed|bashed)\b"
    ),
    "hot_red": r"\b(?:hot|warm|red|redness|inflamed|burning)\b",
    "swollen": r"\b(?:swollen|swelling|swell|swells|swelled|puffy|puffed up|fluid|effusion|ballooned)\b",
    "fever": (
        r"\b(?:fever\w*|temperature|feverish|high temp|chills|shiver\w*|rigou?rs|night sweats|flu[- ]?like)\b"
        r"|feel(?:ing|s)? (?:really |very |quite )?(?:unwell|ill|sick|poorly|rough|awful|terrible)|\bunwell\b"
    ),
    "no_weight": (
        _NEG_ABLE + r" (?:put|bear|take|stand|place|carry) (?:any |much |my )?(?:weight|pressure)"
        r"|" + _NEG_ABLE + r" (?:walk|stand|hobble)\b(?! (?:far|long|very|more|up|down|without|properly|normally|fast|quickly|as|for|still|around))"
        r"|" + _NEG_ABLE + r" move (?:my|the|his|her) (?:leg|knee)"
        r"|" + _NEG_ABLE + r" (?:take|manage) (?:a|one|four|4|a single|two|2) steps?"
        r"|" + _NEG_ABLE + r" (?:step|stand|lean) on (?:it|my leg|the leg|that leg|my knee)"
        r"|(?:no|zero|non)[- ]?weight[- ]?bearing|(?:buckles|collapses) (?:when|if|as soon as) i (?:stand|put weight|step)"
    ),
    "swelling_fast": (
        r"(?:swell\w*|swollen|puffed up|ballooned|blew up)[^.;!?]{0,40}?(?:straight away|right away|immediately|within (?:an? |a few |\d+ |one |two |the )?(?:minutes?|hours?)"
        r"|quickly|rapidly|fast|huge|massive|like a balloon|instantly|in minutes|twice (?:the|its) (?:normal )?size|double)"
        r"|(?:huge|massive|big|large|severe|rapid|sudden|lots of|a lot of) (?:swelling|amount of swelling)|ballooned|blew up|puffed up|swelled up"
        r"|(?:massively|hugely|really|very|badly|extremely|super|so) (?:swollen|swelled)"
    ),
    "pop": r"(?:heard|felt|there was) (?:a |an |something )?(?:loud )?(?:pop|crack|snap|tear|rip|clunk)|went pop|popping sound|\bsnapped\b",
    "locked": (
        r"\block(?:ed|s|ing)?\b(?! ?(?:down|screen|box|er|smith))"
        r"|(?:knee|leg|joint|it|it's|it is)\b[^.;!?]{0,15}?\bstuck\b|stuck (?:bent|in (?:a |one )?(?:bent )?position)"
        r"|(?:won't|can't|cannot|unable to|not able to|couldn't|will not) (?:fully |completely |properly )?(?:straighten|extend|unbend|unlock|unjam)"
        r"|\bjammed\b|\bcatch(?:es|ing)? and lock|(?:won't|doesn't|can't) (?:come|go) (?:fully )?straight|(?:won't|can't|couldn't) get (?:it|my leg|my knee|the knee|the leg) (?:fully |completely )?straight"
    ),
    "cant_bend": r"(?:won't|can't|cannot|unable to|not able to|couldn't) (?:bend|flex) (?:it|my knee|the knee|the leg|my leg)?",
    "giving_way": (
        r"giv(?:es|ing) way|gave way|give way|giving out|gives out|gave out|buckl\w*|unstable|instability"
        r"|(?:knee|leg) (?:collapsed|collapses|keeps collapsing|went from under|goes out|went out)|(?:feels?|felt) (?:wobbly|loose|unstable)"
    ),
    "child": (
        r"\b(?:my |our |a )?(?:son|daughter|child|children|kid|kids|boy|girl|toddler|teen|teens|teenager|teenage|adolescent|grandson"
        r"|granddaughter|stepson|stepdaughter|nephew|niece)\b"
        r"|\b(?:he|she)(?:'s| is) (?:[4-9]|1[0-7])\b(?! ?(?:km|k|miles?|min|minutes|kg|weeks?|days?))"
        r"|\b(?:[4-9]|1[0-7])[- ]?(?:year|yr)s?[- ]?old\b|\bi'm (?:[4-9]|1[0-7])\b(?! ?(?:km|k|miles?|min|minutes|weeks?|days?))|\b(?:aged?) (?:[4-9]|1[0-7])\b"
    ),
    "limp_or_hip": r"\blimp\w*|\bhobbl\w*|\bhip\b|\bgroin\b|\bthigh pain|(?:pain|hurts?|ache|aching|sore) (?:in|at|around) (?:his|her|their|my|the) thigh|won't walk|refus\w* to walk",
    "night_pain": (
        r"(?:at|during the|every|in the) night|nights?\b|wakes? (?:me|him|her|them)(?: up)?|woken|woke (?:me |him |her )?up"
        r"|keeps (?:me|him|her) (?:up|awake)|can't sleep|in bed|overnight|nocturnal"
    ),
    "systemic": (
        r"(?:los(?:t|ing)|dropp(?:ed|ing)|shed) (?:a lot of |so much |lots of |\d+ ?(?:kg|kilos?|pounds?|lbs?|stone) (?:of )?)?weight"
        r"|(?:los(?:t|ing)|dropp(?:ed|ing)|shed) (?:about |around |over |nearly |almost |like |maybe )?(?:\d+(?:\.\d+)?|a|two|three|four|five|six) ?(?:kg|kgs|kilos?|pounds?|lbs?|stone)\b"
        r"|weight loss|weight has dropped|cancer|tumou?r|chemo\w*|night sweats|\bfever\w*|lump"
    ),
    "age55": (
        r"\b(?:5[5-9]|[6-9]\d)[- ]?(?:years?|yrs?)[- ]?old\b|\bi'm (?:5[5-9]|[6-9]\d)\b(?! ?(?:km|k|miles?|min|kg))|\baged? (?:5[5-9]|[6-9]\d)\b"
        r"|\b(?:elderly|pensioner|grandmother|grandfather|grandma|grandpa|granny|older (?:man|woman|person|adult|lady))\b"
        r"|\bin (?:my|his|her) (?:late fifties|sixties|seventies|eighties|nineties|60s|70s|80s|90s)\b"
    ),
}

# Concepts whose patterns join two words across a window of other words.
WINDOWED = frozenset({"calf_symptom", "calf_dvt", "chest_pain", "foot_cold_pale", "foot_numb", "swelling_fast", "locked"})
# Concepts that set the scene and may come from the user's earlier turns.
CONTEXT_CONCEPTS = ("injury", "child", "exercise", "age55")
_COMPILED = {name: re.compile(pattern) for name, pattern in CONCEPTS.items()}


@dataclass(frozen=True)
class RedFlag:
    id: str
    level: str  # "emergency" | "urgent"
    label: str  # what the red flag is, in plain words (the escalation's reason)
    why: str  # why it matters, for the reply
    source: str  # where the red flag and its level come from
    triggers: tuple[frozenset[str], ...]  # any one set of concepts, all present, fires the rule
    examples: tuple[str, ...] = ()  # everyday phrasings for semantic matching
    requires: frozenset[str] = frozenset()  # concepts a semantic match also needs (context)
    kb_section: str = ""  # the knowledge base's section on this red flag, cited in the reply


def _t(*sets: str) -> tuple[frozenset[str], ...]:
    return tuple(frozenset(s.split()) for s in sets)


# The one table of red flags. Order matters only for ties: the first matching rule of the highest
# level gives the reason.
RED_FLAGS: tuple[RedFlag, ...] = (
    RedFlag(
        "clot_in_lung", "emergency",
        "calf pain or swelling together with breathlessness or chest pain",
        "Calf pain or swelling with breathlessness or chest pain can mean a blood clot has travelled to the lung.",
        "factsheet.md s.9 [NHS-DVT]; factsheet-research.md s.6 [S35c]",
        _t("calf_symptom breathless", "calf_symptom chest_pain", "calf_dvt breathless", "calf_dvt chest_pain", "calf breathless"),
        ("my calf is swollen and i'm short of breath", "sore swollen calf and now my chest hurts when i breathe in",
         "leg swelling and i can't catch my breath", "calf pain and breathlessness", "my calf is red and hot and i feel breathless"),
        kb_section="Calf pain or swelling with breathlessness or chest pain",
    ),
    RedFlag(
        "chest_pain_or_fainting", "emergency",
        "chest pain, fainting or severe breathlessness",
        "Chest pain, fainting or severe breathlessness, especially during exercise, can be a sign of a heart or lung problem.",
        "factsheet.md s.9 [NHS-CHEST]",
        _t("chest_pain", "faint", "severe_breath"),
        ("i got chest pain during my run", "i fainted while running", "i passed out at the end of my race",
         "my chest feels tight and heavy when i run", "i blacked out on a run", "i couldn't breathe at all during the run and nearly collapsed"),
        kb_section="Chest pain, fainting or severe breathlessness during exercise",
    ),
    RedFlag(
        "suicidal_thoughts", "emergency",
        "thoughts of suicide or self-harm",
        "Thoughts of suicide or self-harm need urgent support from people who can help right now.",
        "factsheet.md s.9 [NHS-CRISIS]",
        _t("suicide"),
        ("i want to kill myself", "i don't want to live anymore", "i've been thinking about ending my life",
         "i feel like hurting myself", "there's no point in living if i can't run", "i want to end it all"),
        kb_section="Thoughts of suicide or self-harm",
    ),
    RedFlag(
        "deformed_knee", "emergency",
        "a knee that looks deformed or out of place",
        "A knee or kneecap that looks deformed or out of place can mean a dislocation or a fracture.",
        "factsheet.md s.9 [NHS-KNEE]; factsheet-research.md s.6 [S32]",
        _t("deformed"),
        ("my knee looks deformed after the fall", "my kneecap has moved to the side", "my knee is at a weird angle",
         "i think i dislocated my kneecap", "the knee looks bent the wrong way after i landed"),
        kb_section="A knee that looks deformed after an injury",
    ),
    RedFlag(
        "foot_circulation", "emergency",
        "a cold, pale, numb or tingling foot after a knee injury",
        "A cold, pale, numb or tingling foot after a knee injury can mean damage to the blood vessels or nerves.",
        "factsheet.md s.9 [NHS-KNEE]; factsheet-research.md s.6 [S33][S36]",
        _t("foot_cold_pale", "foot_numb injury"),
        ("my foot went cold and pale after i hurt my knee", "after the fall my foot is numb and tingling",
         "my toes are blue since the knee injury", "i can't feel my foot since i twisted my knee"),
        requires=frozenset(),
        kb_section="A cold, pale, numb or tingling foot after a knee injury",
    ),
    RedFlag(
        "hot_swollen_knee_fever", "emergency",
        "a hot, red or swollen knee with a fever or feeling unwell",
        "A hot, swollen knee with a fever or feeling unwell can be a joint infection, which needs treatment in hospital quickly.",
        "factsheet.md s.9 [NHS-KNEE]; factsheet-research.md s.6: EMERGENCY in clinician pathways [S31][S32], urgent on public pages [S34]; the higher level is used",
        _t("hot_red fever", "swollen fever"),
        ("my knee is hot red and swollen and i have a fever", "swollen warm knee and i feel shivery and unwell",
         "my knee is puffy and hot and i've got a temperature"),
        kb_section="A hot, red, swollen knee with a fever",
    ),
    RedFlag(
        "no_weight_after_injury", "emergency",
        "cannot put weight on the leg after an injury or a fall",
        "Not being able to put weight on the leg after an injury can mean a fracture (a criterion of the Ottawa Knee Rules for an X-ray).",
        "factsheet.md s.9 [NHS-KNEE][OTTAWA]; factsheet-research.md s.6: EMERGENCY in a clinician pathway [S31]; the higher level is used",
        _t("no_weight injury", "no_weight child"),
        ("i fell and now i can't put any weight on my leg", "after the tackle i can't walk on it",
         "i twisted my knee and can't stand on it", "since the fall i can't take a single step", "i slipped and can't bear weight on that leg"),
        requires=frozenset({"injury"}),
        kb_section="Cannot put weight on the leg after an injury or fall",
    ),
    RedFlag(
        "swelling_after_injury", "emergency",
        "marked swelling soon after an injury",
        "A knee that swells up quickly after an injury may be bleeding into the joint, for example from a torn ligament or a fracture.",
        "factsheet.md s.9 [NHS-KNEE]; factsheet-research.md s.6: trauma with swelling EMERGENCY [S31]; the higher level is used",
        _t("swelling_fast injury", "swelling_fast pop", "swollen pop injury"),
        ("i twisted my knee and it swelled up straight away", "heard a pop and the knee ballooned within an hour",
         "after the fall my knee is massively swollen"),
        requires=frozenset({"injury"}),
        kb_section="Severe swelling soon after an injury",
    ),
    RedFlag(
        "locked_after_injury", "emergency",
        "a locked knee that cannot straighten after an injury",
        "A knee that is locked and cannot straighten after an injury may have a torn cartilage or another structure blocking the joint.",
        "factsheet.md s.9 [NHS-KNEE]; factsheet-research.md s.6: after trauma EMERGENCY [S31], URGENT [S32]; the higher level is used",
        _t("locked injury"),
        ("i twisted my knee and now it's stuck and won't straighten", "after the fall my knee locked and i can't straighten it"),
        requires=frozenset({"injury"}),
        kb_section="A locked knee after an injury",
    ),
    RedFlag(
        "child_cannot_walk", "emergency",
        "a child or teenager with knee or hip pain who cannot walk or put weight on the leg",
        "In children and teenagers, knee pain can come from the hip, and a child who cannot walk should not be made to walk before a specialist review.",
        "factsheet-research.md s.6 [S40]: EMERGENCY if the child cannot bear weight (the research file's suggested level)",
        _t("child no_weight"),
        ("my son can't walk on his leg and says his knee hurts", "my daughter won't put weight on her leg"),
        requires=frozenset({"child"}),
        kb_section="A child or teenager with knee pain and a limp or hip pain",
    ),
    RedFlag(
        "locked_knee", "urgent",
        "a locked knee that cannot straighten",
        "A knee that locks and cannot fully straighten may have a torn cartilage or a loose fragment blocking the joint.",
        "factsheet.md s.9 [NHS-KNEE]; factsheet-research.md s.6 [S32]",
        _t("locked"),
        ("my knee is stuck and won't straighten", "my knee keeps locking", "the knee is jammed bent", "i can't straighten my knee fully"),
        kb_section="A locked knee after an injury",
    ),
    RedFlag(
        "no_weight", "urgent",
        "cannot put weight on the leg",
        "Not being able to put weight on the leg needs a doctor's assessment to rule out a fracture or another serious cause.",
        "factsheet.md s.9 [NHS-KNEE][OTTAWA]",
        _t("no_weight"),
        ("i can't put weight on it", "i can't stand on my leg", "i can't walk on it at all", "unable to bear weight on my leg"),
        kb_section="Cannot put weight on the leg after an injury or fall",
    ),
    RedFlag(
        "hot_swollen_knee", "urgent",
        "a hot, red, swollen knee",
        "A hot, red, swollen knee can be a sign of a joint infection or inflammation and needs to be checked quickly.",
        "factsheet.md s.9 [NHS-KNEE]",
        _t("hot_red swollen"),
        ("my knee is hot red and swollen", "my knee is warm and puffy", "the joint is red hot and swollen"),
        kb_section="A hot, red, swollen knee with a fever",
    ),
    RedFlag(
        "giving_way_after_injury", "urgent",
        "a knee that keeps giving way after an injury",
        "A knee that gives way after an injury may have a damaged ligament and needs to be checked.",
        "factsheet.md s.9 [NHS-KNEE]; factsheet-research.md s.6 [S33]",
        _t("giving_way injury", "pop injury", "pop giving_way", "pop swollen", "pop exercise"),
        ("since i twisted it my knee keeps giving way", "after the tackle my knee buckles", "i heard a pop when i landed and it feels unstable"),
        requires=frozenset({"injury"}),
        kb_section="A pop or a knee that keeps giving way after an injury",
    ),
    RedFlag(
        "calf_clot", "urgent",
        "calf swelling, pain, warmth or redness",
        "A swollen, warm or red calf can be a deep vein thrombosis (a blood clot in the leg), which needs checking the same day.",
        "factsheet.md s.9 [NHS-DVT]; factsheet-research.md s.6 [S35b]",
        _t("calf_dvt"),
        ("my calf is swollen and warm", "one calf is red hot and puffy", "my calf is swollen and sore", "i think i have a blood clot in my leg"),
        kb_section="Calf swelling, pain and warmth without breathing problems",
    ),
    RedFlag(
        "child_limp_hip", "urgent",
        "a child or teenager with knee pain and a limp or hip pain",
        "In children and teenagers, knee pain with a limp or hip pain can come from a hip problem such as a slipped growth plate (SCFE), which needs prompt assessment.",
        "factsheet.md s.9 [NHS-KNEE]; factsheet-research.md s.5-6 [S40]",
        _t("child limp_or_hip"),
        ("my 12 year old has knee pain and is limping", "my son's knee hurts and he has pain in his hip",
         "my teenage daughter is limping and says her knee aches", "my child has a limp and sore knee"),
        requires=frozenset({"child"}),
        kb_section="A child or teenager with knee pain and a limp or hip pain",
    ),
    RedFlag(
        "night_pain_systemic", "urgent",
        "night pain with unexplained weight loss, fever or a history of cancer",
        "Knee pain that wakes you at night together with weight loss, fever or a history of cancer needs a doctor's check for a serious cause.",
        "factsheet.md s.9; factsheet-research.md s.6 [S32][S37]",
        _t("night_pain systemic"),
        ("my knee pain wakes me at night and i've lost weight without trying", "pain at night and i had cancer before",
         "the knee aches every night and i keep losing weight"),
        kb_section="Night pain with weight loss, fever or a history of cancer",
    ),
    RedFlag(
        "older_adult_injury", "urgent",
        "knee pain after an injury or a fall at age 55 or over",
        "After a knee injury at age 55 or over, the Ottawa Knee Rules say an X-ray is needed to check for a fracture.",
        "factsheet.md s.9 [OTTAWA]; factsheet-research.md s.6 [S30]",
        _t("age55 injury", "cant_bend injury"),
        ("i'm 67 and fell on my knee", "my elderly mother fell and hurt her knee", "after the fall i can't bend my knee"),
        requires=frozenset({"injury"}),
        kb_section="The five criteria",
    ),
)
RULES_BY_ID = {r.id: r for r in RED_FLAGS}
_LEVEL_RANK = {"emergency": 2, "urgent": 1}


# --------------------------------------------------------------------------- normalising

_CONTRACTIONS = {
    r"\bcant\b": "can't", r"\bcannot\b": "can't", r"\bcan not\b": "can't", r"\bwont\b": "won't",
    r"\bdont\b": "don't", r"\bdoesnt\b": "doesn't", r"\bdidnt\b": "didn't", r"\bisnt\b": "isn't",
    r"\barent\b": "aren't", r"\bwasnt\b": "wasn't", r"\bhasnt\b": "hasn't", r"\bhavent\b": "haven't",
    r"\bcouldnt\b": "couldn't", r"\bim\b": "i'm", r"\bive\b": "i've", r"\bits\b": "it's", r"\bi am\b": "i'm",
    r"\bit is\b": "it's", r"\bwill not\b": "won't", r"\bdo not\b": "don't", r"\bdoes not\b": "doesn't",
    r"\bdid not\b": "didn't", r"\bis not\b": "isn't", r"\bwas not\b": "wasn't", r"\bcould not\b": "couldn't",
    r"\bhave not\b": "haven't", r"\bhas not\b": "hasn't", r"\bare not\b": "aren't",
}
_CONTRACTION_RES = [(re.compile(k), v) for k, v in _CONTRACTIONS.items()]

# Words a typo is corrected to (only words that matter for red flags and scope).
KEYWORDS = sorted(set("""
swollen swelling swelled breath breathless breathing breathe chest faint fainted fainting fever feverish
temperature locked locking straighten straighten weight numb numbness tingling tingly pale deformed
deformity dislocated dislocation suicidal suicide calf calves limping limp injury injured twisted
falling fallen tripped tackle collapsed unbearable shivery unwell redness throbbing blood clot
thrombosis kneecap stuck giving buckled buckles unstable teenager daughter cancer tumour night
ibuprofen naproxen paracetamol acetaminophen painkillers dosage milligrams tablets instructions
ignore previous prompt system shoulder elbow wrist ankle achilles plantar fasciitis
""".split()))
_KNOWN = set(KEYWORDS)
_WORD = re.compile(r"[a-z][a-z']+")


# Common words that sit one or two letters away from a keyword and must never be "corrected".
_COMMON = set("""
should would could shoulders sight light right might fight tight eight ought night weigh weighs
their there where these those three threw through though thought while white whole about above
after again being below black bread break breed bring broad brown chase cheap check cheat child
clock cloak faith fainter feather fewer fiver later lever liver lucky never numbs other otherwise
plain plane plate place shallow shoulder since still stock stick straight strain strait stuff
swallow swallen taking tinkling under until water which whose women world worse worst write
""".split())


def _osa_distance(a: str, b: str, limit: int) -> int:
    """Edit distance with transpositions (optimal string alignment), stopping early past `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2, prev = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if prev2 is not None and i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


@lru_cache(maxsize=4096)
def _correct(word: str) -> str:
    """The keyword a misspelt word stands for: same first letter, one edit away (two for long words)."""
    if word in _COMMON:
        return word
    limit = 1 if len(word) < 8 else 2
    best, best_d = word, limit + 1
    for keyword in KEYWORDS:
        if keyword[0] != word[0]:
            continue
        d = _osa_distance(word, keyword, limit)
        if d < best_d:
            best, best_d = keyword, d
    return best


def normalise(text: str, vocabulary: frozenset[str] = frozenset(), fuzzy_chars: int = 4000) -> str:
    """Lower case, straight quotes, contractions written one way, and typos of red-flag words
    corrected ("swolen" -> "swollen"); words known to the corpus are never "corrected"."""
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    text = re.sub(r"\s+", " ", text)
    for pattern, repl in _CONTRACTION_RES:
        text = pattern.sub(repl, text)

    def fix(m: re.Match) -> str:
        w = m.group(0)
        if len(w) < 5 or w in _KNOWN or w in vocabulary or "'" in w:
            return w
        return _correct(w)

    head, tail = text[:fuzzy_chars], text[fuzzy_chars:]
    return _WORD.sub(fix, head) + tail


# --------------------------------------------------------------------------- negation and clauses

_NEGATION = re.compile(
    r"\b(?:no|not|never|without|isn't|aren't|wasn't|weren't|don't|doesn't|didn't|haven't|hasn't|hadn't|nor|none|neither"
    r"|free of|denies|deny|zero|nothing like|rather than|instead of|ruled out|no sign of|no signs of|absence of)\b"
)
# A negation reaches to the end of its clause: a sentence end, a contrast word, or a new subject.
_CLAUSE_END = re.compile(
    r"[.;!?\n]|\b(?:but|although|though|however|yet|except|whereas|while|and then|then|now)\b"
    r"|,\s*(?=(?:and |so )?(?:my|i|i'm|i've|it|it's|the|he|she|his|her|there|they|we)\b)"
    r"|\b(?:and|so)\s+(?=(?:my|i|i'm|i've|it|it's|the|he|she|his|her|there|they|we|now|then)\b)"
)
# Conditional or general questions ("what should I do if my knee locks?") describe no one's symptom.
_HYPOTHETICAL = re.compile(
    r"\b(?:if|what if|in case|whether|signs? of|symptoms? of|warning signs?|red flags?|such as|how (?:do|would|can) (?:i|you) (?:know|tell)"
    r"|what (?:are|is) (?:the )?(?:signs?|symptoms?)|when should|when do i need|when is it)\b"
)
_DESCRIPTIVE = re.compile(
    r"\b(?:i have|i've got|i've had|i had|i got|i fell|i heard|i felt|i can't|i'm|my \w+ (?:is|was|has|have|feels|felt|keeps|went|looks|won't|can't)"
    r"|(?:he|she|they) (?:has|have|had|is|was|can't|won't|fell)|it's (?:swollen|locked|stuck|hot|red|numb|cold))\b"
)


def clause_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for m in _CLAUSE_END.finditer(text):
        if m.start() > start:
            spans.append((start, m.start()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for m in re.finditer(r"[.!?\n]+", text):
        spans.append((start, m.end()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def _is_negated(text: str, start: int, clauses: list[tuple[int, int]]) -> bool:
    for a, b in clauses:
        if a <= start < b:
            return bool(_NEGATION.search(text, a, start))
    return False


# A question about people in general ("when does a runner's calf pain count as a clot?", "why
# do clinicians check the hip when a teenager has knee pain?"): a generic subject or wording, and
# nobody's own symptom (no "I", "my", "my son", "she" ...) anywhere in the sentence.
_GENERIC = re.compile(
    r"\b(?:in general|generally|typically|usually|count(?:s)? as|treated as|considered|classed as|regarded as"
    r"|a (?:runner|runner's|patient|patient's|person|person's|child|child's|teenager|teenager's|teen|adult|athlete)\b"
    r"|someone|somebody|anyone|people|runners|patients|clinicians?|doctors|physios?|physiotherapists)"
)
_PERSONAL = re.compile(
    r"\b(?:i|i'm|i've|i'd|i'll|me|my|mine|myself|we|our|us|he|she|his|her|him|hers|they|them|their|son|daughter|mum|mom|dad"
    r"|husband|wife|partner|boyfriend|girlfriend|friend|kid|brother|sister|grandson|granddaughter|grandma|grandpa|it's|it)\b"
)


_QUESTION_WORDS = "what|when|how|should|is|are|do|does|can|could|would|which"
_QUESTION_START = re.compile(rf"\s*(?:{_QUESTION_WORDS})\b")
_GENERAL_QUESTION_START = re.compile(rf"(?:in general,? )?(?:why|{_QUESTION_WORDS})\b")


def _is_general_question(sentence: str) -> bool:
    s = sentence.strip()
    is_question = s.endswith("?") or _GENERAL_QUESTION_START.match(s)
    return bool(is_question and _GENERIC.search(s) and not _PERSONAL.search(s))


def _is_hypothetical(text: str, start: int, sentences: list[tuple[int, int]]) -> bool:
    """A match inside a general or conditional question, with no first-hand description before it."""
    for a, b in sentences:
        if a <= start < b:
            sentence = text[a:b]
            if _is_general_question(sentence):
                return True
            if "?" not in sentence and not _QUESTION_START.match(sentence):
                return False
            hyp = _HYPOTHETICAL.search(text, a, start + 1)
            if not hyp:
                return False
            return not _DESCRIPTIVE.search(text, a, hyp.start())
    return False


def _clause_of(pos: int, clauses: list[tuple[int, int]]) -> int:
    for i, (a, b) in enumerate(clauses):
        if a <= pos < b:
            return i
    return -1


def detect_concepts(text: str) -> tuple[set[str], dict[str, str]]:
    """Concepts present, and neither negated nor hypothetical, in normalised `text`; with the
    words that matched. A match must lie within one clause ("my calf is fine but my knee is
    swollen" is no swollen calf), and both its first and its last word must be un-negated
    ("calf is tight but not swollen" is no swollen calf either)."""
    clauses = clause_spans(text)
    sentences = _sentence_spans(text)
    found: dict[str, str] = {}
    for name, regex in _COMPILED.items():
        for m in regex.finditer(text):
            first, last = m.start(), max(m.end() - 1, m.start())
            if _clause_of(first, clauses) != _clause_of(last, clauses):
                continue
            if name == "suicide":
                # Never explained away as a question or a far-off negation: only "not" / "no
                # thoughts of" right before the words undo it ("i'm not suicidal").
                just_before = re.split(r",|\b(?:and|but|so)\b", text[max(0, first - 25) : first])[-1]
                if not _NEGATION.search(just_before):
                    found[name] = m.group(0)
                    break
                continue
            if _is_negated(text, first, clauses):
                continue
            # A window between two words ("calf ... swollen") must not hold a negation itself.
            if name in WINDOWED and _NEGATION.search(m.group(0), 1):
                continue
            if _is_hypothetical(text, first, sentences):
                continue
            found[name] = m.group(0)
            break
    return set(found), found


# --------------------------------------------------------------------------- scope

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


@dataclass
class TriageResult:
    escalation: Escalation | None = None
    refusal: str | None = None  # a key of REFUSALS
    matched_rules: list[str] = field(default_factory=list)
    concepts: dict[str, str] = field(default_factory=dict)
    semantic: dict[str, float] = field(default_factory=dict)


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


# --------------------------------------------------------------------------- the triage


# Everyday runner's-knee complaints that are not red flags. A clause must be closer to a red
# flag's examples than to these (by SEMANTIC_MARGIN) to escalate by meaning alone: the small
# embedding model puts "my calf is sore after a long run" near "my calf is swollen and warm".
BENIGN_EXAMPLES = (
    "my knee hurts going down stairs", "my knee aches after sitting for a long time", "my calf is sore after a long run",
    "my calves are tight after hill sprints", "my knee is a bit swollen after running", "pain behind my kneecap when i squat",
    "my knee clicks and grinds", "my knee feels stiff in the morning", "my knee aches at night after a long run",
    "my knee gives way sometimes when i am tired", "i get out of breath on hills", "my thigh muscles are tired after running",
    "my knee hurts when i kneel", "my kneecap feels sore when i press it", "my knee hurts after a race",
    "my foot feels cold after a winter run", "i feel a bit low because i can't run", "my teenage son has knee pain after football",
    "which exercises help runner's knee", "how long does runner's knee last", "can i keep running with knee pain",
    "my knee pain is getting worse after each run", "i have pain around the kneecap", "my knee feels weak",
    "i can walk fine and put weight on it", "my knee is fine when i walk",
)
# "I can put weight on it" embeds close to "I can't put weight on it": such clauses are not matched.
_ABLE = re.compile(r"\b(?:can|could|able to|managed to)\s+(?:still\s+|easily\s+)?(?:walk|stand|put|bear|run|jog|straighten|bend|move|breathe|feel|squat)")
SEMANTIC_THRESHOLD = 0.75
SEMANTIC_MARGIN = 0.05


class Triage:
    """Rules first. Only when no rule fires: semantic matching of each clause against the rules'
    example phrasings, for recall on phrasings the lexicon lacks. Guarded: negated or conditional
    clauses are not matched, a clause must be nearer a red flag than any benign complaint, and a
    rule that needs context (an injury, a child) still needs it."""

    def __init__(self, embed=None, vocabulary: frozenset[str] = frozenset(),
                 threshold: float = SEMANTIC_THRESHOLD, margin: float = SEMANTIC_MARGIN):
        self.embed = embed  # texts -> normalised float32 matrix; None switches semantic matching off
        self.threshold = threshold
        self.margin = margin
        self.vocabulary = vocabulary
        self.example_rules: list[str] = []
        self.example_matrix = None
        self.benign_matrix = None
        if embed is not None:
            texts = []
            for rule in RED_FLAGS:
                for example in rule.examples:
                    texts.append(example)
                    self.example_rules.append(rule.id)
            vectors = embed(texts + list(BENIGN_EXAMPLES))
            self.example_matrix = vectors[: len(texts)]
            self.benign_matrix = vectors[len(texts) :]

    def normalise(self, text: str) -> str:
        return normalise(text, self.vocabulary)

    def context(self, history_user_turns: list[str]) -> set[str]:
        found: set[str] = set()
        for turn in history_user_turns:
            concepts, _ = detect_concepts(self.normalise(turn))
            found |= concepts & set(CONTEXT_CONCEPTS)
        return found

    def semantic_clauses(self, text: str) -> list[str]:
        """Clauses worth embedding: not negated, with a few words, capped in number."""
        out = []
        general = [(a, b) for a, b in _sentence_spans(text) if _is_general_question(text[a:b])]
        for a, b in clause_spans(text):
            if any(ga <= a < gb for ga, gb in general):
                continue
            clause = text[a:b].strip(" ,")
            if len(clause.split()) < 3 or _NEGATION.search(clause) or _HYPOTHETICAL.search(clause) or _ABLE.search(clause):
                continue
            out.append(clause)
        return out[:12]

    def check(self, message: str, history_user_turns: list[str] | None = None, clause_vectors=None) -> TriageResult:
        text = self.normalise(message)
        concepts, words = detect_concepts(text)
        context = self.context(history_user_turns or [])
        present = concepts | context
        fired: dict[str, float] = {}
        for rule in RED_FLAGS:
            if any(trigger <= present for trigger in rule.triggers):
                fired[rule.id] = 1.0
        semantic: dict[str, float] = {}
        if not fired and self.example_matrix is not None:
            clauses = self.semantic_clauses(text)
            if clauses:
                vectors = clause_vectors if clause_vectors is not None else self.embed(clauses)
                sims = vectors @ self.example_matrix.T
                benign = (vectors @ self.benign_matrix.T).max(axis=1)
                for j, rule_id in enumerate(self.example_rules):
                    margin = sims[:, j] - benign
                    i = int(np.argmax(sims[:, j]))
                    best = float(sims[i, j])
                    if best >= self.threshold and margin[i] >= self.margin and best > semantic.get(rule_id, 0.0):
                        semantic[rule_id] = best
                for rule_id, score in semantic.items():
                    if RULES_BY_ID[rule_id].requires <= present:
                        fired[rule_id] = score
        result = TriageResult(concepts=words, semantic=semantic, matched_rules=list(fired))
        if fired:
            # The highest level; among rules of that level, the surest match (a rule scores 1.0),
            # then the table's order.
            order = list(RULES_BY_ID)
            best = max(fired, key=lambda r: (_LEVEL_RANK[RULES_BY_ID[r].level], fired[r], -order.index(r)))
            rule = RULES_BY_ID[best]
            action = CRISIS_ACTION if rule.id == "suicidal_thoughts" else (
                EMERGENCY_ACTION if rule.level == "emergency" else URGENT_ACTION
            )
            result.escalation = Escalation(level=rule.level, reason=rule.label, action=action, rule=rule.id, source=rule.source,
                                           crisis=rule.id == "suicidal_thoughts")
            return result
        result.refusal = scope_refusal(text)
        return result


def escalation_markdown(escalation: Escalation, marker: str = "") -> str:
    """The reply to a red flag: what to do now and why; no exercise advice. `marker` (" [1]")
    cites the knowledge base's passage on this red flag."""
    rule = RULES_BY_ID[escalation.rule]
    heading = "Emergency" if escalation.level == "emergency" else "Urgent: see a doctor today"
    if escalation.rule == "suicidal_thoughts":
        return (
            f"**{heading}.** {escalation.action}\n\n"
            f"**Why:** {rule.why}{marker} You do not have to face this alone, and talking to someone now can help.\n\n"
            "Your knee questions can wait until you are safe."
        )
    return (
        f"**{heading}.** {escalation.action}\n\n"
        f"**Why:** you described {rule.label}. {rule.why}{marker}\n\n"
        "Do not run or exercise on this leg until a doctor has checked it. "
        "This is not a diagnosis; a clinician needs to examine you."
    )


def embed_fn_from(embeddings) -> callable:
    def embed(texts: list[str]):
        return np.asarray(embeddings.embed_many(list(texts)), dtype=np.float32)

    return embed
