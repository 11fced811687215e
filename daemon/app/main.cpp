#include "app/daemon.hpp"

int main(int argc, char** argv) { return mdshm::app::run_main(argc, argv); }
