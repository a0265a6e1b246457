from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "ildtrial.edc.accounts"
    label = "accounts"
    verbose_name = "Accounts"
