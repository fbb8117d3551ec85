"""The web dashboard: static pages that draw the JSON documents of a small read-only API.

The daemon serves it beside /metrics (`ugro.httpserver`); `ugro dashboard --serve` serves the
same pages from the state files when no daemon runs. `api` builds the documents from the
state, history, alerts and cordons; `app` answers HTTP requests (access, caching, security
headers); `access` decides who may read; `static/` holds the pages, their script and style.
"""
