"""Collects the Goldfish example's measurements into results.json and prints the Markdown table.

usage: report.py WORK_DIR RUN_NAME...   (run.sh calls it; the first run is the baseline)

Per run it reads eval/<name>.{memorized,held_out,valid_loss,memorized_loss}.json (the `cairn eval`
lines) and runs/<name>/metrics.jsonl. The share of targets Goldfish dropped is
1 - (loss_tokens of the run) / (loss_tokens of the baseline), summed over the logged steps: the
runs share the seed and so read the same samples at every step. Python standard library only.
"""
import json
import os
import sys


def read_json(path):
    with open(path) as f:
        return json.loads(f.read())


def metrics(work, name):
    with open(os.path.join(work, "runs", name, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def goldfish_setting(work, name):
    """(enabled, k, h, variant) from the run's resolved config."""
    values, section = {}, None
    with open(os.path.join(work, "runs", name, "config.yaml")) as f:
        for line in f:
            if line.strip() == "goldfish:":
                section = "goldfish"
            elif section and line.startswith("    ") and ":" in line:
                key, value = line.strip().split(":", 1)
                values[key] = value.strip()
            elif section:
                break
    return values["enabled"] == "true", int(values["k"]), int(values["h"]), values["variant"]


def main():
    work, names = sys.argv[1], sys.argv[2:]
    baseline_steps = {m["step"]: m["loss_tokens"] for m in metrics(work, names[0])}
    host = read_json(os.path.join(work, "runs", names[0], "run.json")).get("hardware", {})
    runs = []
    for name in names:
        enabled, k, h, variant = goldfish_setting(work, name)
        lines = metrics(work, name)
        kept = sum(m["loss_tokens"] for m in lines if m["step"] in baseline_steps)
        counted = sum(baseline_steps[m["step"]] for m in lines if m["step"] in baseline_steps)
        evaluation = {part: read_json(os.path.join(work, "eval", f"{name}.{part}.json"))
                      for part in ("memorized", "held_out", "valid_loss", "memorized_loss")}
        runs.append({
            "name": name,
            "label": f"k={k}, h={h}" if enabled else "no Goldfish",
            "short": f"k{k} h{h}" if enabled else "none",
            "detail": f"{variant}: drops {1 - kept / counted:.1%}" if enabled else "standard loss",
            "goldfish": {"enabled": enabled, "k": k, "h": h, "variant": variant},
            "dropped": 1 - kept / counted,
            "memorized": evaluation["memorized"],
            "held_out": evaluation["held_out"],
            "valid_loss": evaluation["valid_loss"]["loss"],
            "memorized_loss": evaluation["memorized_loss"]["loss"],
            "final_train_loss": lines[-1]["loss"],
            "time_s": lines[-1]["time_s"],
            "steps": lines[-1]["step"],
        })
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump({"host": host, "runs": runs}, f, indent=1)
        f.write("\n")
    memorized = runs[0]["memorized"]
    print(f"Greedy recall of {memorized['continuation']} tokens after a {memorized['prefix']}-token "
          f"prefix: {memorized['documents']} memorized documents, "
          f"{runs[0]['held_out']['documents']} held-out ones.\n")
    print("| run | targets dropped | exact match (memorized) | token match (memorized) | "
          "exact / token match (held-out) | loss on memorized docs | held-out loss | "
          "train time |")
    print("|---|---|---|---|---|---|---|---|")
    for run in runs:
        dropped = f"{run['dropped']:.2%}" if run["goldfish"]["enabled"] else "0"
        print(f"| {run['label']} | {dropped} | {run['memorized']['exact_match']:.3f} | "
              f"{run['memorized']['token_match']:.3f} | {run['held_out']['exact_match']:.3f} / "
              f"{run['held_out']['token_match']:.3f} | {run['memorized_loss']:.3f} | "
              f"{run['valid_loss']:.3f} | {run['time_s'] / 60:.1f} min |")


if __name__ == "__main__":
    main()
