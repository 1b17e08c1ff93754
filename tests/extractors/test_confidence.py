"""What the confidence model is told about a reading, and what it makes of it."""

from __future__ import annotations

from renraku.extractors import calibration, ocr
from renraku.extractors.image_reader import ImageReader, vocabulary


def _ocr(text: str, conf: float = 90.0) -> ocr.Reading:
    return ocr.Reading(text, [ocr.Word(text, conf, (0, 0, 10, 10))])


def test_a_job_taken_from_a_reading_that_looked_little_like_it_is_a_weak_match(read_ctx) -> None:
    """薬剤師 read 前師 was taken for 医師: the closed list mends slips, but a far one is told apart."""
    template = read_ctx.template("staff_registration")
    reader = ImageReader(template, read_ctx.config, vocabulary())
    spec = next(s for s in template.fields if s.kind == "job")
    near, far = (reader._text(spec, [_ocr(read)], True, "fax_standard") for read in ("薬剤帥", "前師"))
    assert (near.value, far.value) == ("薬剤師", "医師")
    assert not near.evidence.weak_match and far.evidence.weak_match
    assert len(far.evidence.features()) == len(calibration.PRIOR["text"])


def test_the_shipped_calibration_fits_the_evidence_the_reader_gives() -> None:
    """A feature added without refitting would silently fall back to the cautious prior: every
    group of calibration.json must take exactly the features its evidence has."""
    fitted = calibration._coefficients(str(calibration.CALIBRATION_FILE))
    for kind, group in calibration.GROUPS.items():
        assert len(fitted[group]) == len(calibration.Evidence(kind=kind).features()), group
    assert len(fitted["empty"]) == len(calibration.Evidence(kind="text", empty=True).features())


def test_a_job_most_readings_did_not_give_is_a_disputed_match(read_ctx) -> None:
    """Job titles read wrong with high confidence had been taken on a split vote: an inexact reading
    mended to an entry that most of the crop's other readings did not give."""
    template = read_ctx.template("staff_registration")
    reader = ImageReader(template, read_ctx.config, vocabulary())
    spec = next(s for s in template.fields if s.kind == "job")
    split = reader._text(spec, [_ocr("薬剤帥", 95), _ocr("前師", 80), _ocr("看護帥", 70)], True, "fax_standard")
    agreed = reader._text(spec, [_ocr("薬剤帥", 95), _ocr("薬剤帥", 80), _ocr("看護帥", 70)], True, "fax_standard")
    exact = reader._text(spec, [_ocr("薬剤師", 95), _ocr("前師", 80), _ocr("看護帥", 70)], True, "fax_standard")
    assert split.value == agreed.value == exact.value == "薬剤師"
    assert split.evidence.disputed_match
    assert not agreed.evidence.disputed_match and not exact.evidence.disputed_match


def test_fields_a_reader_noted_are_never_counted_as_accepted_when_the_threshold_is_chosen() -> None:
    """A noted field goes to a person whatever its confidence; were it counted, right bold repairs
    would make a lower threshold look safe for the fields that are accepted."""
    from renraku.bench.calibrate import choose_threshold

    features = calibration.Evidence(kind="text", mean_conf=0.9, min_conf=0.9).features()
    coefficients = {"text": [0.0] * len(features)}  # every field at 0.5
    right = [("text", features, True, "scan", "typed", False)] * 1000
    wrong_noted = [("text", features, False, "scan", "typed", True)] * 5
    chosen = choose_threshold(right + wrong_noted, coefficients, 0.995)
    assert chosen["accepted"] == 1000 and chosen["validated_fields"] == 1005 and chosen["precision"] == 1.0
    unnoted = choose_threshold(right + [(*r[:5], False) for r in wrong_noted], coefficients, 0.995)
    assert unnoted["accepted"] == 0  # the same five, not noted, leave no threshold safe
