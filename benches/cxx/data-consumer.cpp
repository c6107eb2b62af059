// Reads N events of a topic with their data, through the Diaspora C++ API: the consumer has a
// data selector (all of each event's data) and an allocator (a buffer per event, freed when
// the event goes), as an analysis code that uses the data has. Prints the same
// "Throughput: X events/s" line as the benchmark programs, then the bytes read.
//
//   diaspora-data-consumer DRIVER DRIVER_CONFIG_JSON_FILE TOPIC NUM_EVENTS [CONSUMER_NAME]
#include <diaspora/Consumer.hpp>
#include <diaspora/DataAllocator.hpp>
#include <diaspora/DataSelector.hpp>
#include <diaspora/Driver.hpp>
#include <diaspora/Exception.hpp>
#include <diaspora/TopicHandle.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

int main(int argc, char** argv) {
    if (argc < 5) {
        std::cerr << "usage: " << argv[0]
                  << " DRIVER DRIVER_CONFIG_JSON_FILE TOPIC NUM_EVENTS [CONSUMER_NAME]\n";
        return 2;
    }
    const std::string driver_name = argv[1];
    std::ifstream config_file(argv[2]);
    if (!config_file) {
        std::cerr << "cannot read " << argv[2] << "\n";
        return 2;
    }
    const std::string config((std::istreambuf_iterator<char>(config_file)),
                             std::istreambuf_iterator<char>());
    const std::string topic_name = argv[3];
    const size_t wanted = std::strtoull(argv[4], nullptr, 10);
    const std::string consumer_name = argc > 5 ? argv[5] : "data-consumer";
    try {
        auto driver = diaspora::Driver::New(driver_name.c_str(), diaspora::Metadata{config});
        auto topic = driver.openTopic(topic_name);
        diaspora::DataSelector whole = [](const diaspora::Metadata&,
                                          const diaspora::DataDescriptor& d) { return d; };
        diaspora::DataAllocator per_event = [](const diaspora::Metadata&,
                                               const diaspora::DataDescriptor& d) {
            if (d.size() == 0) return diaspora::DataView{};
            char* buffer = new char[d.size()];
            return diaspora::DataView{buffer, d.size(), buffer,
                                      [](void* p) { delete[] static_cast<char*>(p); }};
        };
        auto consumer = topic.consumer(consumer_name, whole, per_event);
        size_t received = 0, bytes = 0;
        const auto start = std::chrono::steady_clock::now();
        while (received < wanted) {
            auto event = consumer.pull().wait(5000);
            if (!event) continue;
            if (event->id() == diaspora::NoMoreEvents) break;
            bytes += event->data().size();
            received += 1;
        }
        const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
        std::cout << "Events: " << received << "\n";
        std::cout << "Throughput: " << received / elapsed.count() << " events/s\n";
        std::cout << "Data: " << bytes << " bytes, " << bytes / elapsed.count() / 1e9
                  << " GB/s\n";
    } catch (const diaspora::Exception& e) {
        std::cerr << "diaspora error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
