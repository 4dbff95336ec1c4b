//! A generic PostgreSQL job queue (work in progress).
