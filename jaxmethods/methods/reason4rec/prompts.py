"""The prompts of Reason4Rec's four experts, verbatim from the authors' code (Peter-Fy/Reason4Rec
at d7738c8), plus a compact set with the same slots for the tiny demo decoder.

    p = PROMPTS["authors"]
    p.summarizer.format(cls=..., title=..., rating=..., review=...)          # 1_Summarizer/1
    p.reasoner.format(cls=..., title=..., user_history=..., item_history=...)  # 2_Reasoner/4,5,7
    p.predictor.format(..., user_avg=..., item_avg=..., analysis=...)         # 2_Reasoner/2,4; 3_Predictor
    p.direct.format(..., user_avg=..., item_avg=...)                          # 2_Reasoner/1,4

The reward model and the Predictor share one template (`predictor`): the reward model is trained
with the target's true review in the analysis slot and scores teacher reasons in it. Histories
are `context.history_text(..., with_rating=...)`: with ratings for `direct` / `predictor`,
without for `reasoner`. The hinted retry prompt of the distillation (`reasoner_hint`) is built,
as in the authors' code, on the histories *with* ratings (the variable holding the history text
was overwritten before the retry loop), with the raw rating value `{rating}` of the target.
"""

from __future__ import annotations

from dataclasses import dataclass

OUTPUT_PREFIX = "Predicted Rating: "
RATING_TARGET = "Predicted Rating: {rating:.1f}"
FORBIDDEN = ("1.0", "2.0", "3.0", "4.0", "5.0", "rating ", "star ", "stars ")

_SUMMARIZER = """Task: Summarize the reasons behind the given rating of a {cls} based on the customer review.
{cls}: {title}
Rating: {rating}
Review: {review}

Analyze the above customer review for the {cls} '{title}' and summarize the reasons behind the given rating of {rating}. Please consider the positive and negative aspects mentioned in the review and provide the keywords of reasons and user preference elements.

[Example]
Product: Wireless Bluetooth Headphones
Review: I absolutely love these wireless Bluetooth headphones. They are incredibly lightweight and comfortable to wear, with a long battery life. The sound quality is clear, with deep bass and crisp highs. However, the charging case is prone to scratches, and sometimes the connection is unstable. Overall, I'm very satisfied; they are worth the price.
Output:
Positive Aspects: Comfortable, Lightweight, Long Battery Life, Clear Sound, Deep Bass, Crisp Highs
Negative Aspects: Scratch-Prone Case, Unstable Connection
User Preference Elements: Durability, Aesthetic Appeal, Reliability, Value for Money

Give your reply following the example output format. Directly give Positive Aspects, Negative Aspects, and User Preference Elements without other content.
"""

_RATING_HEAD = """Here is information about a user and a new {cls} "{title}" being recommended to the user. For the user, we have the user's past rating history User ratings range from 1 to 5, where 1 is the lowest and 5 is the highest. For the new item being recommended, we have the item rating history by other users.

### User Rating History ###
{user_history}

### Item Rating History by other users ###
{item_history}

### Average Past Ratings ###
User's Average Rating (all previous ratings): {user_avg}
Item's Average Rating (all ratings by other users): {item_avg}
"""

_OUTPUT_FORMAT = """[Output Format] Predicted Rating: [A rating between 1 and 5]\tGive your reply following the output format without any extra information."""

_DIRECT = (
    _RATING_HEAD
    + """
Based on the user's and item's rating histories and their average past ratings, please predict the user's rating for "{title}", (1 being the lowest and 5 being highest, directly give the rating without other content.)
"""
    + _OUTPUT_FORMAT
)

_PREDICTOR = (
    _RATING_HEAD
    + """
### Personalized Recommendation Analysis ###
{analysis}

Based on the above information, please predict the user's rating for "{title}", (1 being the lowest and 5 being highest, directly give the rating without other content.)
"""
    + _OUTPUT_FORMAT
)

_REASONER_BODY = """Here is information about a user and a new {cls} "{title}" being recommended to the user. For the user, we have the user's review history. For the new item being recommended, we have the item review history by other users.

### User Review History ###
{user_history}

### Item Review History by other users ###
{item_history}

Analyze whether the user will like the new {cls} "{title}" based on the user's preferences and the recommended item's features. Give you rationale in one paragraph."""

_REASONER_HINT = (
    _REASONER_BODY
    + " \n(Hint: The user actually rated the item {rating} stars. The star range is from 1 to 5, "
    "with 5 being the best. Use the hint but don't mention user's rating in your response.)"
)


@dataclass(frozen=True)
class PromptSet:
    """Templates (str.format) of the experts; slots as in the module docstring."""

    summarizer: str
    direct: str
    predictor: str
    reasoner: str
    reasoner_hint: str


# A compact set for the tiny demo decoder: the same slots and history lines, little boilerplate.
_COMPACT_HEAD = (
    "{cls} {title}\nuser:\n{user_history}\nitem:\n{item_history}\navg {user_avg} {item_avg}\n"
)
COMPACT = PromptSet(
    summarizer="summarize {cls} {title} rated {rating}: {review}",
    direct=_COMPACT_HEAD + "predict",
    predictor=_COMPACT_HEAD + "analysis: {analysis}\npredict",
    reasoner="{cls} {title}\nuser:\n{user_history}\nitem:\n{item_history}\nanalyze",
    reasoner_hint="{cls} {title}\nuser:\n{user_history}\nitem:\n{item_history}\nanalyze, hint {rating}",
)
AUTHORS = PromptSet(_SUMMARIZER, _DIRECT, _PREDICTOR, _REASONER_BODY, _REASONER_HINT)
PROMPTS: dict[str, PromptSet] = {"authors": AUTHORS, "compact": COMPACT}


def get_prompts(name: str) -> PromptSet:
    if name not in PROMPTS:
        raise ValueError(f"config.prompts: {name!r} is not one of {sorted(PROMPTS)}")
    return PROMPTS[name]


def rating_target(rating: float) -> str:
    """The Predictor's and reward model's SFT target, e.g. "Predicted Rating: 4.0"."""
    return RATING_TARGET.format(rating=float(rating))


def has_forbidden(text: str, forbidden: tuple[str, ...] = FORBIDDEN) -> str | None:
    """The first forbidden string `text` contains (the authors' filter on hinted reasons)."""
    for word in forbidden:
        if word in text:
            return word
    return None
