from django.apps import AppConfig


class EsignConfig(AppConfig):
    name = "ildtrial.edc.esign"
    label = "esign"
    verbose_name = "Electronic signatures"
