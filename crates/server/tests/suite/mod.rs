mod api;
mod common;
mod dispatch;
