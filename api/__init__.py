"""The worker's HTTP API: sessions for the iOS app, health for the platform."""
