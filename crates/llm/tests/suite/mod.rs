mod batch;
mod errors;
mod openai;
mod retry;
mod stream;
mod support;
