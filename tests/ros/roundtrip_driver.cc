// Test driver for the ROS round trip: publishes recorded inputs to the node one at a time, waits for
// each reply, and records the replies. Records are separated by NUL bytes; an input record "\x01reset"
// calls the node's reset service instead of publishing.
//
//   roundtrip_driver INPUT_TOPIC OUTPUT_TOPIC RESET_SERVICE INPUTS_FILE REPLIES_FILE
#include <ros/ros.h>
#include <std_msgs/String.h>
#include <std_srvs/Empty.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

int main(int argc, char** argv) {
  ros::init(argc, argv, "rill_roundtrip_driver", ros::init_options::AnonymousName);
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s INPUT_TOPIC OUTPUT_TOPIC RESET_SERVICE INPUTS_FILE REPLIES_FILE\n", argv[0]);
    return 2;
  }
  std::ifstream in(argv[4], std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> inputs;
  std::stringstream ss(all);
  for (std::string rec; std::getline(ss, rec, '\0');) inputs.push_back(rec);

  ros::NodeHandle nh;
  std::vector<std::string> replies;
  ros::Subscriber sub = nh.subscribe<std_msgs::String>(argv[2], 100, [&](const std_msgs::String::ConstPtr& m) {
    replies.push_back(m->data);
  });
  ros::Publisher pub = nh.advertise<std_msgs::String>(argv[1], 100);
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
    std_msgs::String m;
    m.data = rec;
    pub.publish(m);
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
