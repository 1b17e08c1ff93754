"""Finding the sheet on an image page: upright, deskewed, perspective-corrected, registered.

A sheet is found by its printed rules. The page is brought to a working size (a photo first has
its paper outline warped to A4); horizontal and vertical rules are extracted by morphology; then,
for each template and each way up, the template's long printed edges are fitted onto the page's
rules: a first guess from the extent of the rules, then a few rounds of matching each template
edge point to the nearest rule in its direction and solving for the transform (affine for scans
and faxes, a full homography for photos). How many template edge points end on a rule is the
score that classifies the page. Cheap enough to try every template both ways up (milliseconds
each); no OCR is involved.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from renraku.extractors.ink import components
from renraku.extractors.templates import Template

WORK_LONG_SIDE = 1169  # A4 at 100 dpi: precise to a quarter millimetre, fast
MIN_EDGE_PT = 20.0  # template edges shorter than this (check boxes) are not used for fitting
SAMPLE_STEP_PT = 4.0
RADII = (24, 12, 6, 3)  # matching radius per round, working pixels
HIT_PX = 2.5  # a template point is on a rule when the rule is this close


@dataclass
class Lines:
    """The rules of a page at working size, with the nearest rule row/column for every pixel."""

    shape: tuple[int, int]
    h_above: np.ndarray
    h_below: np.ndarray
    v_left: np.ndarray
    v_right: np.ndarray
    extents: list[tuple[float, float, float, float]]  # where the table's rules may span (x0, y0, x1, y1)


@dataclass
class Registration:
    template: Template
    H: np.ndarray  # 3×3: template points → working pixels
    score: float  # share of template edge points lying on a page rule
    rotation: int  # 0 or 180


def _nearest(mask: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    n = mask.shape[axis]
    idx = np.arange(n, dtype=np.int32)
    idx = idx[:, None] if axis == 0 else idx[None, :]
    big = np.int32(1 << 28)
    before = np.where(mask, idx, -big)
    before = np.maximum.accumulate(before, axis=axis)
    after = np.where(mask, idx, big)
    after = np.flip(np.minimum.accumulate(np.flip(after, axis=axis), axis=axis), axis=axis)
    return before, np.ascontiguousarray(after)  # flat lookups (`_targets`) need no copy


def find_lines(work: np.ndarray) -> Lines:
    h, w = work.shape
    ink = cv2.adaptiveThreshold(work, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 21, 12)
    hk, vk = max(15, w // 28), max(15, h // 50)
    hmask = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((1, hk), np.uint8))
    vmask = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((vk, 1), np.uint8))
    # Rules a little broken by noise are joined; single stray strokes are not rules.
    hmask = cv2.dilate(hmask, np.ones((1, 3), np.uint8))
    vmask = cv2.dilate(vmask, np.ones((3, 1), np.uint8))
    h_above, h_below = _nearest(hmask > 0, 0)
    v_left, v_right = _nearest(vmask > 0, 1)
    return Lines((h, w), h_above, h_below, v_left, v_right, _rule_extents(hmask, vmask, min(hk, vk)))


def _rule_extents(hmask: np.ndarray, vmask: np.ndarray, min_rule: int) -> list[tuple[float, float, float, float]]:
    """Where the table's rules span: all long rules, and the same without each outermost one.

    A stray line (a signature line, a fold, a streak) would stretch a single extent; leaving out
    each outermost rule in turn gives the fit a start without it. Fax streaks across the whole
    page and the paper's own edges are never rules.
    """
    h, w = hmask.shape
    boxes = []
    for mask in (hmask, vmask):
        _n, _labels, stats = components(mask, min_rule)  # every rule holds a run of min_rule pixels
        for x, y, bw, bh, _area in stats[1:]:
            if bw > 0.95 * w or bh > 0.95 * h:
                continue
            if x <= 2 or y <= 2 or x + bw >= w - 2 or y + bh >= h - 2:
                continue
            if max(bw, bh) < 0.1 * w:
                continue
            boxes.append((x, y, x + bw, y + bh))
    if not boxes:
        return []
    b = np.array(boxes, dtype=np.float64)

    def extent(rows: np.ndarray) -> tuple[float, float, float, float]:
        return float(rows[:, 0].min()), float(rows[:, 1].min()), float(rows[:, 2].max()), float(rows[:, 3].max())

    out = [extent(b)]
    if len(b) > 3:
        for i in {int(b[:, 0].argmin()), int(b[:, 1].argmin()), int(b[:, 2].argmax()), int(b[:, 3].argmax())}:
            out.append(extent(np.delete(b, i, axis=0)))
    return list(dict.fromkeys(out))


@dataclass
class EdgePoints:
    h_pts: np.ndarray  # points on horizontal template edges (N, 2), points
    v_pts: np.ndarray
    bbox: tuple[float, float, float, float]


def edge_points(template: Template) -> EdgePoints:
    """Points along the template's long printed edges (made once per sheet layout: every page
    tries every template)."""
    return _edge_points(tuple(tuple(r) for r in template.printed_rects))


@lru_cache(maxsize=32)
def _edge_points(printed_rects: tuple[tuple[float, float, float, float], ...]) -> EdgePoints:
    hs, vs = [], []
    for x0, top, x1, bottom in printed_rects:
        if x1 - x0 >= MIN_EDGE_PT:
            xs = np.arange(x0 + 2, x1 - 2, SAMPLE_STEP_PT)
            hs += [(x, top) for x in xs] + [(x, bottom) for x in xs]
        if bottom - top >= MIN_EDGE_PT:
            ys = np.arange(top + 2, bottom - 2, SAMPLE_STEP_PT)
            vs += [(x0, y) for y in ys] + [(x1, y) for y in ys]
    rects = np.array(printed_rects, dtype=np.float64)
    bbox = (rects[:, 0].min(), rects[:, 1].min(), rects[:, 2].max(), rects[:, 3].max())
    h_pts, v_pts = np.unique(np.array(hs).reshape(-1, 2), axis=0), np.unique(np.array(vs).reshape(-1, 2), axis=0)
    h_pts.setflags(write=False)  # shared by every page
    v_pts.setflags(write=False)
    return EdgePoints(h_pts, v_pts, bbox)


def _map(H: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Template points through H, as x and y. An affine H's denominator is exactly 1: not divided by."""
    x, y = pts[:, 0], pts[:, 1]
    u, v = H[0, 0] * x + H[0, 1] * y + H[0, 2], H[1, 0] * x + H[1, 1] * y + H[1, 2]
    if H[2, 0] == 0 and H[2, 1] == 0 and H[2, 2] == 1:
        return u, v
    w = H[2, 0] * x + H[2, 1] * y + H[2, 2]
    return u / w, v / w


def _apply(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return np.stack(_map(H, pts), axis=1)


def _targets(lines: Lines, mapped: tuple[np.ndarray, np.ndarray], horizontal: bool,
             radius: float) -> tuple[np.ndarray, np.ndarray]:
    """For each mapped point, the coordinate of the nearest rule across its edge, and whether found."""
    h, w = lines.shape
    x, y = mapped
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)  # a degenerate fit sends points away (or to nan)
    u = np.minimum(np.rint(np.where(inside, x, 0.0)), w - 1).astype(np.intp)
    v = np.minimum(np.rint(np.where(inside, y, 0.0)), h - 1).astype(np.intp)
    at = v * w + u  # the flat index: one gather, not two-dimensional indexing
    if horizontal:
        a, b, own = lines.h_above.ravel().take(at), lines.h_below.ravel().take(at), y
    else:
        a, b, own = lines.v_left.ravel().take(at), lines.v_right.ravel().take(at), x
    target = np.where(np.abs(own - a) <= np.abs(b - own), a, b).astype(np.float64)
    ok = inside & (np.abs(target - own) <= radius)
    return target, ok


def _solve(h_pts: np.ndarray, y_t: np.ndarray, v_pts: np.ndarray, x_t: np.ndarray,
           projective: bool) -> np.ndarray | None:
    """Least squares for H from 1-D constraints: horizontal edges fix y, vertical edges fix x."""
    if len(h_pts) < 8 or len(v_pts) < 8:
        return None
    s = 1.0 / 1000.0  # condition the system: coordinates of order 1
    hx, hy, ht = h_pts[:, 0] * s, h_pts[:, 1] * s, y_t * s
    vx, vy, vt = v_pts[:, 0] * s, v_pts[:, 1] * s, x_t * s
    nh = len(h_pts)
    A = np.zeros((nh + len(v_pts), 8))
    A[:nh, 3], A[:nh, 4], A[:nh, 5], A[:nh, 6], A[:nh, 7] = hx, hy, 1.0, -ht * hx, -ht * hy
    A[nh:, 0], A[nh:, 1], A[nh:, 2], A[nh:, 6], A[nh:, 7] = vx, vy, 1.0, -vt * vx, -vt * vy
    r = np.concatenate([ht, vt])
    if not projective:
        A = A[:, :6]
    try:  # normal equations: a tenth of lstsq's time on these tall, well-conditioned systems
        sol = np.linalg.solve(A.T @ A, A.T @ r)
    except np.linalg.LinAlgError:  # points all on one line: no transform
        return None
    h = np.r_[sol, [0.0, 0.0]] if not projective else sol
    Hn = np.array([[h[0], h[1], h[2]], [h[3], h[4], h[5]], [h[6], h[7], 1.0]])
    S = np.diag([s, s, 1.0])
    return np.linalg.inv(S) @ Hn @ S


def initial_guesses(points: EdgePoints, lines: Lines, rotation: int) -> list[np.ndarray]:
    """The template's extent onto each candidate extent of the page's rules, and onto the page."""
    h, w = lines.shape
    tx0, ty0, tx1, ty1 = points.bbox
    page = (tx0 * w / 595.28, ty0 * h / 841.89, tx1 * w / 595.28, ty1 * h / 841.89)
    guesses = []
    for px0, py0, px1, py1 in [*lines.extents, page]:
        sx, sy = (px1 - px0) / (tx1 - tx0), (py1 - py0) / (ty1 - ty0)
        if not 0.5 < sx / sy < 2.0:
            continue
        if rotation == 180:
            guesses.append(np.array([[-sx, 0, px1 + sx * tx0], [0, -sy, py1 + sy * ty0], [0, 0, 1.0]]))
        else:
            guesses.append(np.array([[sx, 0, px0 - sx * tx0], [0, sy, py0 - sy * ty0], [0, 0, 1.0]]))
    return guesses


def _refine(H: np.ndarray, points: EdgePoints, lines: Lines, projective: bool) -> np.ndarray:
    for radius in RADII:
        yh, okh = _targets(lines, _map(H, points.h_pts), True, radius)
        xv, okv = _targets(lines, _map(H, points.v_pts), False, radius)
        new = _solve(points.h_pts[okh], yh[okh], points.v_pts[okv], xv[okv], projective and radius <= RADII[1])
        if new is None:
            break
        H = new
    return H


def fit(template: Template, lines: Lines, rotation: int, projective: bool,
        points: EdgePoints | None = None) -> Registration:
    """The best fit of one template one way up, over the starting guesses."""
    points = points or edge_points(template)
    best: Registration | None = None
    for H0 in initial_guesses(points, lines, rotation):
        H = _refine(H0, points, lines, projective)
        reg = Registration(template, H, score(lines, points, H) if _sheet_sized(H, points, lines.shape) else 0.0,
                           rotation)
        if best is None or reg.score > best.score:
            best = reg
        if best.score > 0.97:
            break
    return best or Registration(template, np.eye(3), 0.0, rotation)


def _sheet_sized(H: np.ndarray, points: EdgePoints, shape: tuple[int, int]) -> bool:
    """Whether a fit maps the sheet onto something of a sheet's size and shape. Fitted to a page
    with a few stray lines (a fax cover page), the least squares can fold the whole sheet onto one
    of them: every horizontal rule then lies on that line, and the fit scored 0.96."""
    h, w = shape
    x0, y0, x1, y1 = points.bbox
    tl, tr, br, bl = _apply(H, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64))
    width = (np.linalg.norm(tr - tl) + np.linalg.norm(br - bl)) / 2 / ((x1 - x0) * w / 595.28)
    height = (np.linalg.norm(bl - tl) + np.linalg.norm(br - tr)) / 2 / ((y1 - y0) * h / 841.89)
    return 0.5 < width < 2.0 and 0.5 < height < 2.0 and 2 / 3 < width / height < 1.5


def score(lines: Lines, points: EdgePoints, H: np.ndarray) -> float:
    _, okh = _targets(lines, _map(H, points.h_pts), True, HIT_PX)
    _, okv = _targets(lines, _map(H, points.v_pts), False, HIT_PX)
    return float((okh.sum() + okv.sum()) / (len(okh) + len(okv)))


# --------------------------------------------------------------------------- page preparation

@dataclass
class WorkPage:
    """The page at working size, and the transform from original pixels to working pixels."""

    gray: np.ndarray
    to_work: np.ndarray  # 3×3, original pixels → working pixels
    photo: bool


def _has_background(gray: np.ndarray) -> bool:
    h, w = gray.shape
    b = max(4, min(h, w) // 30)
    border = _median([gray[:b], gray[-b:], gray[:, :b], gray[:, -b:]])
    return border < _median([gray[h // 4: 3 * h // 4, w // 4: 3 * w // 4]]) - 40


def _median(parts: list[np.ndarray]) -> float:
    """np.median of the grey levels of all `parts` together, from their histograms: a third of the
    time on a phone photo, no copies (exact while a level has fewer than 2**24 pixels, the
    histogram's float32: MAX_PIXELS is 60 M, a quarter of it 15 M)."""
    counts = sum(cv2.calcHist([p], [0], None, [256], [0, 256]).ravel().astype(np.int64) for p in parts)
    cumulative = np.cumsum(counts)
    n = int(cumulative[-1])
    low = int(np.searchsorted(cumulative, (n - 1) // 2, side="right"))  # the middle one or two, sorted
    high = int(np.searchsorted(cumulative, n // 2, side="right"))
    return (low + high) / 2


def find_paper(gray: np.ndarray) -> np.ndarray | None:
    """The four corners of the paper in a photo (TL, TR, BR, BL in portrait order), if clear."""
    h, w = gray.shape
    scale = 800.0 / max(h, w)
    small = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    blur = cv2.GaussianBlur(small, (5, 5), 0)
    _, paper = cv2.threshold(blur, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    paper = cv2.morphologyEx(paper, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    contours, _ = cv2.findContours(paper, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    biggest = max(contours, key=cv2.contourArea)
    if cv2.contourArea(biggest) < 0.2 * small.shape[0] * small.shape[1]:
        return None
    quad = _quad_from_sides(biggest)
    if quad is None:
        return None
    quad = quad / scale
    # Order: the paper's long sides run top to bottom (A4 portrait); 180° is left to the fit.
    c = quad.mean(axis=0)
    quad = quad[np.argsort(np.arctan2(quad[:, 1] - c[1], quad[:, 0] - c[0]))]  # clockwise from left-top-ish
    start = int(np.argmin(quad.sum(axis=1)))
    quad = np.roll(quad, -start, axis=0)  # TL, TR, BR, BL
    top, left = np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[3] - quad[0])
    if top > left:  # the photo shows the sheet lying sideways
        quad = np.roll(quad, 1, axis=0)
    return quad


def _straight_runs(segments: list[tuple[np.ndarray, np.ndarray]],
                   max_turn_deg: float = 12.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Consecutive segments of an outline that run the same way, as one side (a slightly bowed
    edge of paper comes out of the polygon approximation in several pieces)."""
    def angle(seg: tuple[np.ndarray, np.ndarray]) -> float:
        d = seg[1] - seg[0]
        return float(np.degrees(np.arctan2(d[1], d[0])))

    def turn(a: float, b: float) -> float:
        return abs((a - b + 180) % 360 - 180)

    # start at a sharp turn, so that no side is split across the start of the list
    n = len(segments)
    start = max(range(n), key=lambda i: turn(angle(segments[i - 1]), angle(segments[i])))
    ordered = segments[start:] + segments[:start]
    runs = [ordered[0]]
    for seg in ordered[1:]:
        if turn(angle(runs[-1]), angle(seg)) < max_turn_deg:
            runs[-1] = (runs[-1][0], seg[1])
        else:
            runs.append(seg)
    return runs


def _quad_from_sides(contour: np.ndarray) -> np.ndarray | None:
    """The paper's corners where its four longest straight sides meet. A shadow over a corner (the
    phone's, a hand's) bites it out of the outline; the sides on either side of it still show
    where the corner is."""
    peri = cv2.arcLength(contour, True)
    poly = cv2.approxPolyDP(contour, 0.01 * peri, True).reshape(-1, 2).astype(np.float64)
    if len(poly) < 4:
        return None
    sides = _straight_runs([(poly[i], poly[(i + 1) % len(poly)]) for i in range(len(poly))])
    if len(sides) < 4:
        return None
    longest = sorted(sorted(range(len(sides)), key=lambda i: -np.linalg.norm(sides[i][1] - sides[i][0]))[:4])
    if sum(np.linalg.norm(sides[i][1] - sides[i][0]) for i in longest) < 0.6 * peri:
        return None  # no four clear sides: not a sheet of paper
    corners = []
    for a, b in zip(longest, longest[1:] + longest[:1], strict=True):
        (p1, p2), (p3, p4) = sides[a], sides[b]
        d1, d2 = p2 - p1, p4 - p3
        det = d1[0] * -d2[1] - d1[1] * -d2[0]
        if abs(det) < 1e-6 * np.linalg.norm(d1) * np.linalg.norm(d2):
            return None  # two of the sides run parallel: not four sides of one sheet
        t = ((p3 - p1)[0] * -d2[1] - (p3 - p1)[1] * -d2[0]) / det
        corners.append(p1 + t * d1)
    quad = np.array(corners)
    area = cv2.contourArea(quad.astype(np.float32))
    if not cv2.isContourConvex(quad.astype(np.float32)) or not 0.95 <= area / cv2.contourArea(contour) <= 1.5:
        return None  # the corners do not hold the paper (a bitten corner adds, it never takes away)
    return quad


def prepare(gray: np.ndarray) -> WorkPage:
    h, w = gray.shape
    work_w, work_h = round(WORK_LONG_SIDE * 595.28 / 841.89), WORK_LONG_SIDE
    if _has_background(gray):
        quad = find_paper(gray)
        if quad is not None:
            dst = np.array([[0, 0], [work_w - 1, 0], [work_w - 1, work_h - 1], [0, work_h - 1]], dtype=np.float64)
            M = cv2.getPerspectiveTransform(quad.astype(np.float32), dst.astype(np.float32))
            work = cv2.warpPerspective(gray, M, (work_w, work_h), flags=cv2.INTER_AREA, borderValue=255)
            return WorkPage(work, M.astype(np.float64), True)
    M = np.eye(3)
    if w > h:  # a portrait sheet scanned sideways: stand it up (which way is settled by the fit)
        M = np.array([[0, -1, h - 1], [1, 0, 0], [0, 0, 1.0]])
        gray = cv2.rotate(gray, cv2.ROTATE_90_COUNTERCLOCKWISE)
        h, w = gray.shape
    s = WORK_LONG_SIDE / max(h, w)
    work = cv2.resize(gray, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    return WorkPage(work, np.diag([s, s, 1.0]) @ M, False)


def register(work: WorkPage, lines: Lines, templates: list[Template]) -> list[Registration]:
    """Every template fitted both ways up, best first."""
    fits = []
    for t in templates:
        points = edge_points(t)
        for rotation in (0, 180):
            fits.append(fit(t, lines, rotation, work.photo, points))
    return sorted(fits, key=lambda r: r.score, reverse=True)


def rectify(gray: np.ndarray, work: WorkPage, reg: Registration, dpi: int) -> np.ndarray:
    """The original pixels resampled into template space: the sheet as the blank, at `dpi`."""
    width, height = reg.template.page_size
    to_orig = np.linalg.inv(work.to_work) @ reg.H @ np.diag([72.0 / dpi, 72.0 / dpi, 1.0])
    size = (round(width * dpi / 72), round(height * dpi / 72))
    return cv2.warpPerspective(gray, to_orig, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=255)
