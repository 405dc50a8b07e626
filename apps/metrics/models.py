"""The console's charts read these: what each resource did, counted per interval by the rollup
(apps/metrics/rollup.py) from the rows the platform keeps anyway, so a chart over 30 days reads
at most a few hundred small rows per metric whatever the traffic was."""

from __future__ import annotations

from django.db import models

from apps.accounts.models import Resource


class MetricPoint(models.Model):
    """One metric of one resource over [start, start + minutes): a count, or for a gauge (calls
    in progress, numbers owned) its highest value. 5-minute points are kept two days, hourly
    points SPOOL_METRICS_DAYS."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="+")
    metric = models.CharField(max_length=32)
    minutes = models.PositiveSmallIntegerField()  # 5 or 60
    start = models.DateTimeField()
    value = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["resource", "minutes", "metric", "start"], name="metrics_point_unique"
            )
        ]
        indexes = [models.Index(fields=["minutes", "start"])]

    def __str__(self) -> str:
        return f"{self.metric} {self.start:%Y-%m-%d %H:%M} +{self.minutes}m = {self.value:g}"
