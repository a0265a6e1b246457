from django.urls import path

from ildtrial.edc.participants import casebook, views

app_name = "participants"
urlpatterns = [
    path("", views.participant_list, name="list"),
    path("screening-log/", views.screening_log, name="screening_log"),
    path("new/", views.register, name="register"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/casebook/", casebook.casebook, name="casebook"),
    path("<int:pk>/consent/", views.consent, name="consent"),
    path("<int:pk>/withdraw/", views.withdraw, name="withdraw"),
    path("<int:pk>/evaluate/", views.evaluate, name="evaluate"),
    path("<int:pk>/sign-eligibility/", views.sign_eligibility, name="sign_eligibility"),
    path("<int:pk>/screen-fail/", views.screen_fail, name="screen_fail"),
    path("<int:pk>/randomize/", views.randomize, name="randomize"),
    path("<int:pk>/unblind/", views.unblind, name="unblind"),
]
