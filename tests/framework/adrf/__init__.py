"""adrf's own tests, vendored from https://github.com/em1208/adrf at d63848a ("Release 0.1.14", the installed
version; adrf's sdist on PyPI ships no tests), run against `OnLoopAPIView` instead of adrf's `APIView`.

adrf is MIT-licensed: Copyright (c) 2022 Enrico Massa; the licence text is in LICENSE beside this file and applies
to the vendored test code. Each file says what was changed. The changes are the import of the view class
(`compat.APIView`), and what our project settings require (no `django.contrib.auth`, JSON-only parsers, problem
documents rather than DRF's error bodies).

Upstream tests that do not apply, and why:
- tests/test_views.py `ClassBasedViewIntegrationTests`, `FunctionBasedViewIntegrationTests`: sync views (`def get`)
  dispatched synchronously. `OnLoopAPIView.dispatch` is async-only (every view here is async); a sync handler is
  still called, inline on the loop, which `ClassBasedAsyncViewIntegrationTests` covers for `options`.
- tests/test_views.py `FunctionBasedAsyncViewIntegrationTests`, tests/test_authentication.py `*_func_view`:
  adrf's `@api_view` builds adrf's own `APIView`, not ours; nothing of ours runs.
- `test_logged_in_get_succeeds` (both async classes): it creates a `django.contrib.auth` user in the database;
  this project installs neither auth nor per-request database access. What it checks (a `request.user` set by
  middleware survives dispatch) is not something `OnLoopAPIView` changes.
- tests/test_generics.py, test_viewsets.py, test_routers.py, test_serializers.py, test_shortcuts.py,
  test_testmodule.py: adrf's generic views, viewsets, routers, serializers and test client, which we do not
  replace (they sit on top of the dispatch these tests pin, with database models).
"""
