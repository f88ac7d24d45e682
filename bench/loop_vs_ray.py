"""The shared report of the loop-vs-Ray benchmarks: per-stage cost in a plain loop, the whole
pipeline on a local Ray, and Ray's overhead against the loop."""


def report_lines(unit: str, n: int, per_stage, loop_wall: float, ray_wall: float, kept_on_ray: int,
                 cores: int, audio_s: float, audio_what: str) -> list[str]:
    """per_stage: (name, cpu_s, wall_s) of each stage in the loop; n samples kept by the loop."""
    lines = [f"| stage (plain loop, 1 process) | CPU-s | {unit}/s | audio s per CPU-s |", "|---|---|---|---|"]
    for name, cpu, wall in per_stage:
        lines.append(f"| {name} | {cpu:.1f} | {n / max(wall, 1e-9):.2f} | {audio_s / max(cpu, 1e-9):.1f} |")
    total_cpu = sum(c for _, c, _ in per_stage)
    return lines + [
        f"| **whole pipeline, loop** | {total_cpu:.1f} | {n / loop_wall:.2f} | {audio_s / total_cpu:.1f} |",
        "",
        f"Whole pipeline on a local Ray ({cores} cores): {ray_wall:.1f} s wall incl. writing shards, "
        f"{kept_on_ray / ray_wall:.2f} {unit}/s, {audio_s / ray_wall / cores:.1f} audio s per core-second.",
        f"Plain loop: {loop_wall:.1f} s wall on one core. Speed-up on Ray: {loop_wall / ray_wall:.2f}x on {cores} "
        f"cores; Ray overhead (core-seconds beyond the loop's): {100 * (ray_wall * cores / loop_wall - 1):.0f} %.",
        f"Audio produced: {audio_s:.0f} s ({audio_what}).",
        "",
    ]
