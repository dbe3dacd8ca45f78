"""The newcomer's routes: one, three and ten upstream calls per request."""

from django.urls import path

from . import views

urlpatterns = [
    path("one/", views.OneExternalData.as_view()),
    path("three/", views.MultipleExternalData.as_view()),
    path("ten/", views.TenExternalData.as_view()),
]
