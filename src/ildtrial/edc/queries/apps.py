from django.apps import AppConfig


class QueriesConfig(AppConfig):
    name = "ildtrial.edc.queries"
    label = "queries"
    verbose_name = "Queries"
