"""Regenerates `prompts_expected.json`: the authors' own prompt f-strings, cut out of their
scripts (Peter-Fy/Reason4Rec at d7738c8) and evaluated on one toy target. Run once by hand:

    python tests/data/reason4rec/make_prompt_fixture.py /path/to/Reason4Rec/checkout
"""

import json
import re
import subprocess
import sys
from pathlib import Path

SRC = sys.argv[1] if len(sys.argv) > 1 else "/work/.mirror/Peter-Fy+Reason4Rec/repo"


def source(path: str) -> str:
    return subprocess.run(
        ["git", "-C", SRC, "show", f"HEAD:{path}"], capture_output=True, text=True, check=True
    ).stdout


def fstrings(path: str, var: str) -> list[str]:
    return re.findall(rf'{var} = f"""(.*?)"""', source(path), flags=re.S)


ns = dict(
    product_class="Digital Music",
    target_title='Blue "Train"',
    user_history_text="1. Song A, 4.0;\nPositive Aspects: melody\n\n2. Song B, 2.0;\nNegative Aspects: vocals",
    item_history_text="1. Blue Train, 5.0;\nPositive Aspects: rhythm",
    user_average_rating=3.25,
    item_average_rating=4.5,
    target_rating=4.0,
    target_reviews="Great groove.",
)
reasoner_hist = dict(
    user_history_text="1. Song A\nPositive Aspects: melody",
    item_history_text="1. Blue Train\nPositive Aspects: rhythm",
)
out = {"ns": {**ns, "reasoner": reasoner_hist}}
f4 = "2_Reasoner/4_distilling_possible_reason.py"
gen = fstrings(f4, "generate_reason_prompt")
out["reasoner"] = eval('f"""' + gen[0] + '"""', {}, {**ns, **reasoner_hist})
out["reasoner_hint"] = eval('f"""' + gen[1] + '"""', {}, ns)
out["direct"] = eval('f"""' + fstrings(f4, "direct_predict_prompt")[0] + '"""', {}, ns)
reward = eval('f"""' + fstrings(f4, "reward_predict_prompt")[0] + '"""', {}, ns)
out["predictor"] = reward.replace("@@@reasoning###", "It fits.")
rm = fstrings("2_Reasoner/2_construct_reward_train_data.py", "prompt")[0]
out["reward_train"] = eval('f"""' + rm + '"""', {}, ns)
s = re.findall(
    r'review_smummary_prompt = f"""(.*?)"""',
    source("1_Summarizer/1_distilling_aspect_preference_summary.py"),
    flags=re.S,
)[0]
s = s.replace("@@@class###", "Digital Music").replace("@@@title###", "Song A")
out["summarizer"] = s.replace("@@@review###", "Nice.").replace("@@@rating###", str(4.0))
Path(__file__).with_name("prompts_expected.json").write_text(json.dumps(out, indent=1) + "\n")
