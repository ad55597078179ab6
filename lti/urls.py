"""LTI URLs: stable paths an LMS administrator registers once."""

from django.urls import path

from lti import views

app_name = "lti"
urlpatterns = [
    path("jwks/", views.jwks, name="jwks"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("launch/", views.LaunchView.as_view(), name="launch"),
    path("deep-link/<str:launch_id>/", views.DeepLinkView.as_view(), name="deep-link"),
    path("config/", views.config, name="config"),
]
