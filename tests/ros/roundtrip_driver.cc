// Test driver for the ROS round trip: publishes recorded inputs to the node one at a time, waits for
// each reply, and records the replies. Records are separated by NUL bytes; an input record "\x01reset"
// calls the node's reset service instead of publishing. With a 6th argument "vector", each record is a
// line of floats published as std_msgs/Float32MultiArray, and each reply is recorded the same way.
//
//   roundtrip_driver INPUT_TOPIC OUTPUT_TOPIC RESET_SERVICE INPUTS_FILE REPLIES_FILE [vector]
#include <ros/ros.h>
#include <std_msgs/Float32MultiArray.h>
#include <std_msgs/String.h>
#include <std_srvs/Empty.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

int main(int argc, char** argv) {
  ros::init(argc, argv, "rill_roundtrip_driver", ros::init_options::AnonymousName);
  if (argc != 6 && !(argc == 7 && std::string(argv[6]) == "vector")) {
    std::fprintf(stderr, "usage: %s INPUT_TOPIC OUTPUT_TOPIC RESET_SERVICE INPUTS_FILE REPLIES_FILE [vector]\n",
                 argv[0]);
    return 2;
  }
  const bool vec = argc == 7;
  std::ifstream in(argv[4], std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> inputs;
  std::stringstream ss(all);
  for (std::string rec; std::getline(ss, rec, '\0');) inputs.push_back(rec);

  ros::NodeHandle nh;
  std::vector<std::string> replies;
  ros::Subscriber sub = vec ? nh.subscribe<std_msgs::Float32MultiArray>(
                                  argv[2], 100, [&](const std_msgs::Float32MultiArray::ConstPtr& m) {
                                    std::string line;
                                    char buf[32];
                                    for (float v : m->data) {
                                      std::snprintf(buf, sizeof buf, "%.9g ", static_cast<double>(v));
                                      line += buf;
                                    }
                                    replies.push_back(line);
                                  })
                            : nh.subscribe<std_msgs::String>(argv[2], 100, [&](const std_msgs::String::ConstPtr& m) {
                                replies.push_back(m->data);
                              });
  ros::Publisher pub = vec ? nh.advertise<std_msgs::Float32MultiArray>(argv[1], 100)
                           : nh.advertise<std_msgs::String>(argv[1], 100);
  ros::ServiceClient reset = nh.serviceClient<std_srvs::Empty>(argv[3]);
  const ros::WallTime t0 = ros::WallTime::now();
  while (ros::ok() && (pub.getNumSubscribers() == 0 || sub.getNumPublishers() == 0)) {
    if ((ros::WallTime::now() - t0).toSec() > 30) {
      std::fprintf(stderr, "driver: the node did not connect within 30 s\n");
      return 1;
    }
    ros::spinOnce();
    ros::WallDuration(0.05).sleep();
  }
  if (!reset.waitForExistence(ros::Duration(30))) {
    std::fprintf(stderr, "driver: no service %s\n", argv[3]);
    return 1;
  }
  size_t expected = 0;
  for (const std::string& rec : inputs) {
    if (rec == "\x01reset") {
      std_srvs::Empty e;
      if (!reset.call(e)) {
        std::fprintf(stderr, "driver: reset failed\n");
        return 1;
      }
      continue;
    }
    if (vec) {
      std_msgs::Float32MultiArray m;
      std::stringstream fs(rec);
      for (float v; fs >> v;) m.data.push_back(v);
      pub.publish(m);
    } else {
      std_msgs::String m;
      m.data = rec;
      pub.publish(m);
    }
    ++expected;
    const ros::WallTime s0 = ros::WallTime::now();
    while (ros::ok() && replies.size() < expected) {
      if ((ros::WallTime::now() - s0).toSec() > 30) {
        std::fprintf(stderr, "driver: no reply to input %zu within 30 s\n", expected);
        return 1;
      }
      ros::spinOnce();
      ros::WallDuration(0.002).sleep();
    }
  }
  std::ofstream out(argv[5], std::ios::binary);
  for (const std::string& r : replies) out.write(r.data(), static_cast<std::streamsize>(r.size() + 1));  // with '\0'
  return out.good() ? 0 : 1;
}
