from django.urls import path

from ildtrial.edc.crfs import live, views

app_name = "crfs"
urlpatterns = [
    path("queries/", views.query_list, name="queries"),
    path("database-lock/", views.database_lock, name="lock"),
    path("participant/<int:pk>/visit/<str:visit_code>/<str:form_code>/new/", views.new, name="new"),
    path("participant/<int:pk>/visit/<str:visit_code>/<str:form_code>/not-done/", views.not_done, name="not_done"),
    path("participant/<int:pk>/visit/<str:visit_code>/<str:form_code>/check/", live.check, name="check"),
    path("participant/<int:pk>/visit/<str:visit_code>/<str:form_code>/<int:instance>/", views.edit, name="edit"),
    path("participant/<int:pk>/form/<int:form_pk>/verify/", views.verify, name="verify"),
    path("participant/<int:pk>/form/<int:form_pk>/sign/", views.sign, name="sign"),
    path("participant/<int:pk>/form/<int:form_pk>/lock/", views.lock, name="lock_form"),
    path("participant/<int:pk>/form/<int:form_pk>/query/", views.raise_query, name="raise_query"),
    path("participant/<int:pk>/query/<int:query_pk>/", views.query_action, name="query_action"),
]
