"""``manage.py`` commands of the upstreams app (``demo_upstreams``)."""
