from django.apps import AppConfig


class ScreeningConfig(AppConfig):
    name = "ildtrial.edc.screening"
    label = "screening"
    verbose_name = "Screening"
