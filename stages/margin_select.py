"""Keep pairs whose stored margin reaches the tag's threshold (6 is the floor, as in the seed)."""
from stages.base import Reject, Resources, Stage

FLOOR = 6.0


class MarginSelect(Stage):
    name = "margin_select"
    resources = Resources(cpus=0.25)
    batch_size = 16

    @staticmethod
    def validate(thresholds: dict, known_tags) -> tuple[float, dict]:
        """Checked by the pipeline before any work: known tags, nothing under the floor."""
        th = dict(thresholds or {})
        default = float(th.pop("default", FLOOR))
        per_tag = {k: float(v) for k, v in th.items()}
        unknown = sorted(set(per_tag) - set(known_tags))
        if unknown:
            raise ValueError(f"margin.thresholds has unknown tags {unknown}")
        low = {k: v for k, v in {"default": default, **per_tag}.items() if v < FLOOR}
        if low:
            raise ValueError(f"margin.thresholds below the floor of {FLOOR}: {low}")
        return default, per_tag

    def setup(self):
        self.default, self.per_tag = self.validate(self.params.get("thresholds"), self.params["known_tags"])

    def process(self, row):
        tag, score = row["meta"]["edit_info"], row["meta"]["margin"]
        threshold = self.per_tag.get(tag, self.default)
        if score < threshold:
            raise Reject("low_margin", f"{tag} margin {score:.2f} < {threshold}", score)
        return row
