"""Keep/drop on stored measurements: duration bounds, clipping, silence. Every drop has a reason."""
from stages.base import Reject, Resources, Stage


class BasicFilter(Stage):
    name = "basic_filter"
    resources = Resources(cpus=0.25)
    batch_size = 16

    def process(self, row):
        p = self.params
        for role, a in row["meta"]["acoustics"].items():
            if a["duration_s"] < p["min_duration_s"]:
                raise Reject("too_short", f"{role} {a['duration_s']:.2f} s < {p['min_duration_s']}", a["duration_s"])
            if a["duration_s"] > p["max_duration_s"]:
                raise Reject("too_long", f"{role} {a['duration_s']:.2f} s > {p['max_duration_s']}", a["duration_s"])
            if a["clipped_frac"] > p["max_clipped_frac"]:
                raise Reject("clipping", f"{role} clipped fraction {a['clipped_frac']}", a["clipped_frac"])
            if a["speech_s"] < p["min_speech_s"]:
                raise Reject("no_speech", f"{role} speech {a['speech_s']:.2f} s", a["speech_s"])
        return row
