"""The plain adrf service a newcomer would write: `django-admin startproject` defaults plus one adrf view."""
