mod api;
mod common;
mod dashboard;
mod dashboard_data;
mod dispatch;
