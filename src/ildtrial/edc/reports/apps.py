from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "ildtrial.edc.reports"
    label = "reports"
    verbose_name = "Reports"
