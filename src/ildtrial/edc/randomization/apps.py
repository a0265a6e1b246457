from django.apps import AppConfig


class RandomizationConfig(AppConfig):
    name = "ildtrial.edc.randomization"
    label = "randomization"
    verbose_name = "Randomization"
