from django.urls import path

from ildtrial.edc.study import views

app_name = "study"
urlpatterns = [
    path("", views.protocol_overview, name="protocol"),
    path("schedule/", views.protocol_schedule, name="schedule"),
    path("forms/", views.protocol_forms, name="forms"),
    path("forms/<str:code>/", views.protocol_form, name="form"),
    path("criteria/", views.protocol_criteria, name="criteria"),
]
