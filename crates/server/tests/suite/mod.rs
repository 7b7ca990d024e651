mod api;
mod common;
mod dashboard;
mod dispatch;
