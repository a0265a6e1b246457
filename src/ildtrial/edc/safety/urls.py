"""Safety pages, mounted at /safety/."""

from django.urls import path

from ildtrial.edc.safety import views

app_name = "safety"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("participant/<int:pk>/", views.participant_events, name="participant"),
    path("participant/<int:pk>/new/", views.new_event, name="new_event"),
    path("ae/<int:pk>/", views.event_detail, name="event"),
    path("ae/<int:pk>/edit/", views.edit_event, name="edit_event"),
    path("sae/<int:pk>/", views.sae_detail, name="sae"),
    path("sae/<int:pk>/print/", views.sae_print, name="sae_print"),
    path("sae/<int:pk>/pdf/", views.sae_pdf, name="sae_pdf"),
    path("sae/<int:pk>/assess/", views.sae_assess, name="sae_assess"),
    path("sae/<int:pk>/submit/", views.sae_submit, name="sae_submit"),
    path("sae/<int:pk>/follow-up/", views.sae_follow_up, name="sae_follow_up"),
    path("sae/<int:pk>/narrative/", views.sae_narrative, name="sae_narrative"),
    path("dsmb/open/", views.dsmb_open, name="dsmb_open"),
    path("dsmb/open.pdf", views.dsmb_open_pdf, name="dsmb_open_pdf"),
    path("dsmb/closed/", views.dsmb_closed, name="dsmb_closed"),
    path("dsmb/closed.pdf", views.dsmb_closed_pdf, name="dsmb_closed_pdf"),
    path("dictionary/", views.dictionary_import, name="dictionary"),
]
