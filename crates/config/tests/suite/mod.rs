mod defaults;
mod layering;
mod show;
mod strictness;
mod support;
mod validation;
