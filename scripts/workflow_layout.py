"""Positions and groups for the UI example workflows: one titled group per stage, no two nodes overlapping.

Stages run left to right (inputs, poses, motion, correspondence, sampling, output); the model
loaders sit in one group below, each under the leftmost stage it feeds. Inside a group, nodes
linked to each other form a row (in link order); unlinked ones stack. A node's Note sits right
above it. Room is left for what grows after loading: media previews (preview_room) and sockets or
widgets a newer ComfyUI adds (GAP). tests/test_browser_ui.py measures the result in each frontend.
"""
from __future__ import annotations

from collections import defaultdict

TITLE_H = 30  # LiteGraph.NODE_TITLE_HEIGHT: the title bar is drawn above a node's pos
GAP = 50  # between nodes: about two sockets or widget rows of slack
NOTE_GAP = 30  # between a Note and the node it explains: room for the pack badge drawn above a title
PAD = 24  # inside a group, around its nodes
GROUP_TITLE_H = 50  # a group's title bar (font size 24)
GROUP_GAP = 70  # between groups
FONT_SIZE = 24  # of group titles

# Stage groups in reading order: title, colour (the frontend's group palette), node types.
STAGES = (
    ("Inputs", "#3f789e", ("LoadImage", "LoadVideo", "GetVideoComponents")),
    ("Poses", "#8A8", ("DisPoseDWPoseExtractV2",)),
    ("Motion", "#b58b2a", ("DisPoseSparseMotionFieldV2", "DisPoseCMPDenseFlowV2")),
    ("Correspondence", "#a1309b", ("DisPoseDIFTPointEmbedV2",)),
    ("Sampling", "#b06634", ("DisPoseHybridControlNetApply", "DisPoseMimicMotionSampler",
                             "DisPoseMimicMotionConditioning", "DisPoseMimicMotionTiles", "DisPoseApplyControl",
                             "VideoLinearCFGGuidance", "KSampler")),
    ("Output", "#88A", ("DisPoseGuidancePreview", "VAEDecode", "ImageFromBatch", "CreateVideo", "SaveVideo")),
)
MODELS = ("Models", "#8AA")  # title, colour of the loaders' group


def preview_room(node_type: str, width: float) -> float:
    """How much taller a media loader gets once its file is in ComfyUI/input/ (measured in frontends
    1.27.10 and 1.49.6): LoadImage's image preview widget asks for at least 220 px; LoadVideo's video
    fills the node's width at the video's aspect ratio, so leave room for a portrait 9:16 video
    (MimicMotion's own canvas shape, and the usual phone video)."""
    return {"LoadImage": 220.0, "LoadVideo": width * 16 / 9}.get(node_type, 0.0)


def lay_out(graph: dict, notes: dict[int, dict], loaders: set[str]) -> dict:
    """Sets pos of every node and note in ``graph`` and replaces its groups. ``notes``: node id ->
    the Note placed above that node; ``loaders``: the model loader node types. Node sizes are
    taken as they are in ``graph``."""
    stage_of = {t: i for i, (_, _, types) in enumerate(STAGES) for t in types}
    stage_of |= {t: len(STAGES) for t in loaders}
    noted = {n["id"] for n in notes.values()}
    members, stage_of_id = defaultdict(list), {}
    for node in graph["nodes"]:
        if node["id"] in noted:
            continue
        if node["type"] not in stage_of:
            raise ValueError(f"node type {node['type']} has no stage in scripts/workflow_layout.py: add it to STAGES")
        stage_of_id[node["id"]] = stage_of[node["type"]]
        members[stage_of_id[node["id"]]].append(node)
    links = [(src, dst) for _, src, _, dst, _, _ in graph["links"]]
    groups, x = [], 0.0
    for stage in sorted(s for s in members if s < len(STAGES)):
        title, color, _ = STAGES[stage]
        groups.append(_place_group(title, color, _grid(members[stage], links), notes, x, 0.0))
        x += groups[-1]["bounding"][2] + GROUP_GAP
    if members.get(len(STAGES)):
        groups.append(_place_models(members[len(STAGES)], links, stage_of_id, groups, notes))
    graph["groups"] = [{"id": i + 1, **g, "font_size": FONT_SIZE, "flags": {}} for i, g in enumerate(groups)]
    return graph


def _block(node: dict, notes: dict[int, dict]) -> tuple[float, float, float]:
    """Width, height of the note above (0 without one) and height of the node itself with its
    title bar and preview room."""
    w, h = node["size"]
    note = notes.get(node["id"])
    note_w, note_h = (note["size"][0], TITLE_H + note["size"][1] + NOTE_GAP) if note else (0, 0)
    return max(w, note_w), note_h, TITLE_H + h + preview_room(node["type"], w)


def _put(node: dict, notes: dict[int, dict], x: float, top: float) -> None:
    """Node with its title bar's top at ``top``, its note right above it."""
    node["pos"] = [x, top + TITLE_H]
    if node["id"] in notes:
        note = notes[node["id"]]
        note["pos"] = [x, top - NOTE_GAP - note["size"][1]]


def _grid(nodes: list[dict], links: list[tuple[int, int]]) -> dict[tuple[int, int], list[dict]]:
    """(row, column) -> nodes stacked in that cell: a row per chain of nodes linked inside the group,
    the column is the node's place along its chain."""
    ids = {n["id"] for n in nodes}
    inner = [(s, d) for s, d in links if s in ids and d in ids]
    row = {i: i for i in ids}  # union-find: a chain is named by its smallest node id

    def find(i: int) -> int:
        while row[i] != i:
            i = row[i]
        return i

    for s, d in inner:
        a, b = find(s), find(d)
        row[max(a, b)] = min(a, b)
    depth: dict[int, int] = {}

    def column(i: int) -> int:
        if i not in depth:
            depth[i] = 1 + max((column(s) for s, d in inner if d == i), default=-1)
        return depth[i]

    rows = sorted({find(i) for i in ids})
    cells = defaultdict(list)
    for node in sorted(nodes, key=lambda n: n["id"]):
        cells[(rows.index(find(node["id"])), column(node["id"]))].append(node)
    return cells


def _place_group(title: str, color: str, cells: dict, notes: dict[int, dict], x: float, y: float,
                 min_x: dict[int, float] | None = None) -> dict:
    """Places the cells' nodes in a group with its top left corner at x, y; ``min_x``: column ->
    the leftmost x its nodes may have. The first nodes of a row's cells line up, notes above them."""
    blocks = {key: [_block(n, notes) for n in stack] for key, stack in cells.items()}
    col_w, lead, row_h = defaultdict(float), defaultdict(float), defaultdict(float)
    for (r, c), sizes in blocks.items():
        col_w[c] = max(col_w[c], max(w for w, _, _ in sizes))
        lead[r] = max(lead[r], sizes[0][1])
    for (r, c), sizes in blocks.items():
        rest = sum(GAP + note_h + h for _, note_h, h in sizes[1:])
        row_h[r] = max(row_h[r], lead[r] + sizes[0][2] + rest)
    col_x, left = {}, x + PAD
    for c in sorted(col_w):
        col_x[c] = left = max(left, (min_x or {}).get(c, left))
        left += col_w[c] + GAP
    row_y, bottom = {}, y + GROUP_TITLE_H
    for r in sorted(row_h):
        row_y[r] = bottom
        bottom += row_h[r] + GAP
    for (r, c), stack in cells.items():
        top = row_y[r] + lead[r]  # the first node's note fits in the row's lead
        for i, (node, (_, note_h, h)) in enumerate(zip(stack, blocks[(r, c)])):
            top += note_h if i else 0
            _put(node, notes, col_x[c], top)
            top += h + GAP
    width, height = left - GAP + PAD - x, bottom - GAP + PAD - y
    return {"title": title, "bounding": [x, y, width, height], "color": color}


def _place_models(loaders: list[dict], links: list[tuple[int, int]], stage_of_id: dict[int, int],
                  groups: list[dict], notes: dict[int, dict]) -> dict:
    """The loaders in one row below the stage groups, each under the leftmost stage it feeds."""
    left_of = {g["title"]: g["bounding"][0] for g in groups}

    def under(loader: dict) -> float:
        fed = [STAGES[stage_of_id[d]][0] for s, d in links if s == loader["id"] and stage_of_id[d] < len(STAGES)]
        return min((left_of[t] for t in fed), default=0.0)

    order = sorted(loaders, key=lambda n: (under(n), n["id"]))
    x = under(order[0])
    y = max((g["bounding"][1] + g["bounding"][3] for g in groups if g["bounding"][0] + g["bounding"][2] > x),
            default=-GROUP_GAP) + GROUP_GAP
    cells = {(0, c): [node] for c, node in enumerate(order)}
    return _place_group(MODELS[0], MODELS[1], cells, notes, x, y, {c: under(n) + PAD for c, n in enumerate(order)})
