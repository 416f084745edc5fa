fn main() { sandboxrun_plugin::run_if_child(); }
