"""The E2E data files (`context||reference` lines) as the reference scripts read them; standard library only,
so that tools/meteor_check.py keeps running without pycocoevalcap."""


def read_e2e(path):
    """Groups consecutive lines with the same context: [(context, [refs])]."""
    groups = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            ctx, ref = line.split("||", 1)
            ref = ref.strip()
            if groups and groups[-1][0] == ctx:
                groups[-1][1].append(ref)
            else:
                groups.append((ctx, [ref]))
    return groups
